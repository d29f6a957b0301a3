// Draws the usage history chart (GPU-hours stacked by group, cost as a line) from the page's JSON.
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("usage-chart");
  const source = document.getElementById("usage-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const palette = ["#0b5cad", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a16207"];
  const datasets = data.series.map((series, index) => ({
    type: "bar",
    label: series.label,
    data: series.gpu_hours.map(Number),
    backgroundColor: palette[index % palette.length],
    stack: "gpu-hours",
    yAxisID: "hours",
  }));
  // One cost line when the period is priced in one currency (a second would need its own axis).
  if (data.currencies.length === 1) {
    const currency = data.currencies[0];
    datasets.push({
      type: "line",
      label: `Cost (${currency})`,
      data: data.cost[currency].map(Number),
      borderColor: "#1f2937",
      backgroundColor: "#1f2937",
      pointRadius: 2,
      borderWidth: 2,
      yAxisID: "cost",
    });
  }
  new Chart(canvas, {
    data: { labels: data.labels, datasets },
    options: {
      animation: false,
      aspectRatio: 3,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true },
        hours: { stacked: true, beginAtZero: true, position: "left", title: { display: true, text: "GPU-hours" } },
        cost: {
          display: data.currencies.length === 1,
          beginAtZero: true,
          position: "right",
          grid: { drawOnChartArea: false },
          title: { display: true, text: data.currencies[0] || "" },
        },
      },
    },
  });
});
