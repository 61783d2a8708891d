// Draws the forecast charts from the JSON the page embeds (no extra request), in the
// dashboard's manner: SMS bars striped so channels read apart in grey-scale too.
(function () {
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const palette = ["#1d4ed8", "#0f766e", "#b26a00", "#7a4bd1", "#c2185b", "#475569", "#65a30d"];
  const contacts = { "1": "#93c5fd", "2": "#3b82f6", "3": "#ca8a04", "4+": "#b91c1c" };

  const stripes = window.aftersaleCharts.stripes;

  const options = (stacked, yTitle) => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 14, boxHeight: 14 } } },
    scales: { x: { stacked, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
              y: { stacked, beginAtZero: true, ticks: { precision: 0 },
                   title: { display: true, text: yTitle } } },
  });
  const draw = (id, datasets, stacked, yTitle) => {
    const canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, { type: "bar", data: { labels: data.weeks.map((w) => w.slice(5)), datasets },
                                     options: options(stacked, yTitle) });
  };

  draw("contacts", Object.entries(data.contacts).map(([bucket, counts]) => ({
    label: bucket + (bucket === "1" ? " message" : " messages"), data: counts,
    backgroundColor: contacts[bucket],
  })), true, "customers");
  const journeys = {};
  draw("messages", Object.entries(data.messages).map(([name, counts]) => {
    const [journey, channel] = name.split(" · ");
    if (!(journey in journeys)) journeys[journey] = palette[Object.keys(journeys).length % palette.length];
    return { label: name, data: counts, stack: "sent",
             backgroundColor: channel === "sms" ? stripes(journeys[journey]) : journeys[journey],
             borderColor: "#1f2a44", borderWidth: channel === "sms" ? 1 : 0 };
  }), true, "messages");
  draw("caps", Object.entries(data.caps).map(([label, counts], i) => ({
    label, data: counts, backgroundColor: i === 0 ? "#ca8a04" : "#b91c1c",
  })), false, "messages");
})();
