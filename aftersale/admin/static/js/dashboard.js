// Draws the dashboard charts from the JSON the page embeds (no extra request).
// E-mail and SMS differ in colour family and SMS bars are striped, so the two read apart in
// grey-scale too; the legend shows both.
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const email = {
    sent: "#1d4ed8", delivered: "#15803d", skipped: "#ca8a04", cancelled: "#fde68a",
    failed: "#b91c1c", bounced: "#7f1d1d", unknown: "#7e22ce", sending: "#94a3b8",
  };
  const sms = {
    sent: "#60a5fa", delivered: "#4ade80", skipped: "#facc15", cancelled: "#fef3c7",
    failed: "#f87171", bounced: "#dc2626", unknown: "#c084fc", sending: "#cbd5e1",
  };
  const extra = ["#0f766e", "#7a4bd1", "#b26a00", "#475569", "#c2185b", "#2563eb", "#65a30d"];

  const stripes = window.aftersaleCharts.stripes;
  const fill = (channel, colour) => (channel === "sms" ? stripes(colour) : colour);

  const options = {
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 14, boxHeight: 14 } } },
    scales: { x: { stacked: true, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
              y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
  };
  const draw = (id, labels, datasets) => {
    const canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, { type: "bar", data: { labels, datasets }, options });
  };
  const short = (days) => days.map((d) => d.slice(5));

  const perDay = [];
  for (const [channel, statuses] of Object.entries(data.per_day)) {
    const colours = channel === "sms" ? sms : email;
    for (const [status, counts] of Object.entries(statuses)) {
      perDay.push({
        label: (channel === "sms" ? "SMS " : "e-mail ") + status, data: counts, stack: channel,
        backgroundColor: fill(channel, colours[status] || "#999"),
        borderColor: "#1f2a44", borderWidth: channel === "sms" ? 1 : 0,
      });
    }
  }
  draw("perDay", short(data.days), perDay);
  draw("deferrals", short(data.days), Object.entries(data.deferrals).map(([reason, counts], i) => ({
    label: reason, data: counts, backgroundColor: extra[i % extra.length],
  })));
  const journeys = {};
  draw("upcoming", short(data.upcoming.days), Object.entries(data.upcoming.series).map(
    ([name, counts]) => {
      const [journey, channel] = name.split(" · ");
      if (!(journey in journeys)) journeys[journey] = extra[Object.keys(journeys).length % extra.length];
      return { label: name, data: counts, stack: channel,
               backgroundColor: fill(channel, journeys[journey]),
               borderColor: "#1f2a44", borderWidth: channel === "sms" ? 1 : 0 };
    }));
})();
