// Draws the staff fleet-usage chart (GPU-hours per GPU type, cost as a line) from the page's JSON.
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("fleet-chart");
  const source = document.getElementById("fleet-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const part = data.by_sku;
  const datasets = [
    {
      type: "bar",
      label: "GPU-hours",
      data: part.gpu_hours.map(Number),
      backgroundColor: "#0b5cad",
      yAxisID: "hours",
    },
  ];
  // One cost line when every figure is in one currency (a second would need its own axis).
  if (data.currencies.length === 1) {
    datasets.push({
      type: "line",
      label: `Cost (${data.currencies[0]})`,
      data: part.cost.map(Number),
      borderColor: "#b45309",
      backgroundColor: "#b45309",
      pointRadius: 3,
      borderWidth: 2,
      yAxisID: "cost",
    });
  }
  new Chart(canvas, {
    data: { labels: part.labels, datasets },
    options: {
      animation: false,
      aspectRatio: 3,
      interaction: { mode: "index", intersect: false },
      scales: {
        hours: { beginAtZero: true, position: "left", title: { display: true, text: "GPU-hours" } },
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
