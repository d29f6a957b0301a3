// Draws a pool's capacity, held and requested GPUs per day from the JSON the page embeds.
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("pool-chart");
  const source = document.getElementById("pool-chart-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const line = (label, values, color, dash) => ({
    label,
    data: values,
    borderColor: color,
    backgroundColor: color,
    borderDash: dash || [],
    pointRadius: 0,
    stepped: true,
    borderWidth: 2,
  });
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: [
        line("Capacity", data.capacity, "#1f2937"),
        line("Held", data.held, "#0b5cad"),
        line("Held + requested", data.requested, "#b45309", [6, 4]),
      ],
    },
    options: {
      animation: false,
      aspectRatio: 3,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, title: { display: true, text: "GPUs" } } },
    },
  });
});
