// Draws the weekly complaint-rate trends from the JSON the alerts page embeds: one small
// line chart per subject, its baseline dashed, a subject under alert in red.
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const box = document.getElementById("trends");
  if (!box || !data.charts.length) {
    if (box) box.textContent = "No complaints or orders in the period.";
    return;
  }
  for (const chart of data.charts) {
    const figure = document.createElement("figure");
    figure.className = "trend";
    const caption = document.createElement("figcaption");
    caption.textContent = chart.title + (chart.alert ? " — alert" : "");
    const holder = document.createElement("div");
    holder.className = "chart small";
    const canvas = document.createElement("canvas");
    canvas.id = chart.id;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", "Weekly complaint rate of " + chart.title);
    holder.appendChild(canvas);
    figure.append(caption, holder);
    box.appendChild(figure);
    const colour = chart.alert ? "#b91c1c" : "#1d4ed8";
    const datasets = [{ label: "complaints per 1,000", data: chart.rates, borderColor: colour,
                        backgroundColor: colour, spanGaps: true, tension: 0.2, pointRadius: 2 }];
    if (chart.baseline !== null) {
      datasets.push({ label: "baseline", data: data.weeks.map(() => chart.baseline),
                      borderColor: "#64748b", borderDash: [6, 4], pointRadius: 0 });
    }
    new Chart(canvas, {
      type: "line", data: { labels: data.weeks, datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 plugins: { legend: { position: "bottom", labels: { boxWidth: 14 } } },
                 scales: { x: { ticks: { maxRotation: 0, autoSkipPadding: 12 } },
                           y: { beginAtZero: true } } },
    });
  }
})();
