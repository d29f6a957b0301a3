// Draws a contract's burn-down (committed, cumulative consumed, forecast) from the page's JSON.
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("burn-down-chart");
  const source = document.getElementById("burn-down-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const figure = (value) => (value === null ? null : Number(value));
  const line = (label, values, color, dash) => ({
    label,
    data: values,
    borderColor: color,
    backgroundColor: color,
    borderDash: dash || [],
    pointRadius: 2,
    borderWidth: 2,
    spanGaps: false,
  });
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.months.map((m) => m.month),
      datasets: [
        line("Committed", data.months.map((m) => figure(m.committed)), "#1f2937"),
        line("Consumed", data.months.map((m) => figure(m.consumed)), "#0b5cad"),
        line("Forecast", data.months.map((m) => figure(m.forecast)), "#b45309", [6, 4]),
      ],
    },
    options: {
      animation: false,
      aspectRatio: 3,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, title: { display: true, text: data.currency } } },
    },
  });
});
