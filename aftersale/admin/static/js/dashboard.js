// Draws the dashboard charts from the JSON the page embeds (no extra request).
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const palette = {
    sent: "#4f86f7", delivered: "#2e9d57", skipped: "#e0a100", cancelled: "#f2c14e",
    failed: "#d64545", bounced: "#a61e1e", unknown: "#8e44ad", sending: "#90a4ae",
  };
  const extra = ["#0f766e", "#7a4bd1", "#b26a00", "#475569", "#c2185b"];
  const perDay = [];
  for (const [channel, statuses] of Object.entries(data.per_day)) {
    for (const [status, counts] of Object.entries(statuses)) {
      perDay.push({
        label: channel + " " + status, data: counts, stack: channel,
        backgroundColor: palette[status] || "#999",
        borderColor: channel === "sms" ? "#1f2a44" : "transparent",
        borderWidth: channel === "sms" ? 1 : 0,
      });
    }
  }
  const options = {
    responsive: true, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
              y: { stacked: true, beginAtZero: true } },
  };
  const labels = data.days.map((d) => d.slice(5));
  new Chart(document.getElementById("perDay"), { type: "bar", data: { labels, datasets: perDay }, options });
  const deferrals = Object.entries(data.deferrals).map(([reason, counts], i) => ({
    label: reason, data: counts, backgroundColor: extra[i % extra.length],
  }));
  new Chart(document.getElementById("deferrals"), { type: "bar", data: { labels, datasets: deferrals }, options });
})();
