// The plan page's charts, drawn with Chart.js (static/vendor/chart.umd.js) from the JSON the page
// embeds as <script id="chart-data" type="application/json">. Axes are epoch milliseconds on
// linear scales, labelled in UTC like the rest of the dashboard (no date adapter needed).
(function () {
  "use strict";

  const COLORS = ["#1d4ed8", "#b45309", "#047857", "#7c3aed", "#0e7490", "#9d174d"];
  const RED = "#b91c1c";
  const GREY = "#4b5563";
  const KINDS = {
    ramp: "ramp step",
    activation: "phase start",
    rollback: "rollback",
    now: "now",
  };
  const STYLES = { ramp: "circle", activation: "rectRot", rollback: "triangle", now: "circle" };
  const RADII = { ramp: 3, activation: 6, rollback: 8, now: 0 };
  const DAY = 86400000;

  function day(ms) {
    return new Date(ms).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  }

  function moment(ms) {
    return new Date(ms).toLocaleString("en-GB", {
      day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
    }) + " UTC";
  }

  function formatter(unit) {
    if (unit === "ratio") return (v) => `${+(v * 100).toFixed(2)} %`;
    if (unit === "ms") return (v) => `${+v.toFixed(0)} ms`;
    if (unit === "/5") return (v) => `${+v.toFixed(2)} / 5`;
    return (v) => `${+v.toFixed(4)}${unit && unit !== "count" ? " " + unit : ""}`;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
  }

  // Ticks at UTC midnights, every 1, 2, 7, 14 ... days: as many as fit the chart's width. Under
  // two days, Chart.js's own evenly spaced ticks, labelled with the time of day.
  function dayTicks(scale) {
    const days = (scale.max - scale.min) / DAY;
    if (days < 2) return;
    const fit = Math.max(2, Math.min(8, Math.floor((scale.chart.width || 600) / 75)));
    const every = [1, 2, 7, 14, 28, 56].find((n) => days / n <= fit) || Math.ceil(days / fit);
    const ticks = [];
    for (let t = Math.ceil(scale.min / DAY) * DAY; t <= scale.max; t += every * DAY) ticks.push({ value: t });
    scale.ticks = ticks;
  }

  function timeAxis(chart) {
    return {
      type: "linear",
      min: chart.xMin,
      max: chart.xMax,
      afterBuildTicks: dayTicks,
      ticks: {
        callback: chart.xMax - chart.xMin < 2 * DAY ? clock : day,
        color: GREY,
        autoSkip: true,
        maxRotation: 0,
      },
      grid: { color: "#e5e7eb" },
    };
  }

  function base(chart, yAxis, format) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "nearest", intersect: false },
      scales: { x: timeAxis(chart), y: Object.assign({ ticks: { callback: format, color: GREY } }, yAxis) },
      plugins: {
        legend: { position: "bottom", labels: { usePointStyle: true, pointStyleWidth: 18, color: "#1b1f24" } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? moment(items[0].parsed.x) : ""),
            label: (item) => `${item.dataset.label}: ${format(item.parsed.y)}` +
              (item.raw && item.raw.kind ? ` (${KINDS[item.raw.kind]})` : ""),
          },
        },
      },
    };
  }

  function steps(chart) {
    const format = (v) => `${+v.toFixed(2)} %`;
    const datasets = chart.series.map(function (series, index) {
      const color = COLORS[index % COLORS.length];
      return {
        label: series.label,
        data: series.points,
        stepped: true, // each value holds until the next change
        borderColor: color,
        backgroundColor: color,
        borderWidth: 2,
        pointStyle: (ctx) => STYLES[ctx.raw && ctx.raw.kind] || "circle",
        pointRadius: (ctx) => RADII[ctx.raw && ctx.raw.kind] ?? 3,
        pointBackgroundColor: (ctx) => (ctx.raw && ctx.raw.kind === "rollback" ? RED : color),
        pointBorderColor: (ctx) => (ctx.raw && ctx.raw.kind === "rollback" ? RED : color),
      };
    });
    const options = base(chart, { min: 0, max: 100 }, format);
    options.plugins.legend.labels.pointStyle = "line"; // the lines, not their first marker
    return { type: "line", data: { datasets }, options };
  }

  function guardrail(chart) {
    const format = formatter(chart.unit);
    const datasets = [
      {
        label: "Checked value (worst per hour)",
        data: chart.values,
        borderColor: COLORS[0],
        backgroundColor: COLORS[0],
        borderWidth: 2,
        pointStyle: "line",
        pointRadius: 0,
      },
      {
        label: "Hour with a failing check",
        data: chart.failures,
        showLine: false,
        pointStyle: "triangle",
        pointRadius: 7,
        borderColor: RED,
        backgroundColor: RED,
      },
    ];
    chart.thresholds.forEach(function (threshold, index) {
      datasets.push({
        label: `Threshold (${threshold.label})`,
        data: [{ x: chart.xMin, y: threshold.y }, { x: chart.xMax, y: threshold.y }],
        borderColor: index === 0 ? RED : "#92400e",
        backgroundColor: index === 0 ? RED : "#92400e",
        borderDash: [6, 4],
        borderWidth: 2,
        pointStyle: "dash",
        pointRadius: 0,
      });
    });
    return { type: "line", data: { datasets }, options: base(chart, { beginAtZero: true }, format) };
  }

  function series(chart) {
    const format = formatter(chart.unit);
    const datasets = chart.series.map(function (s, index) {
      const color = COLORS[index % COLORS.length];
      return { label: s.label, data: s.points, borderColor: color, backgroundColor: color, borderWidth: 2, pointRadius: 3 };
    });
    return { type: "line", data: { datasets }, options: base(chart, { min: chart.yMin, max: chart.yMax }, format) };
  }

  const BUILDERS = { steps, guardrail, series };

  function draw() {
    const source = document.getElementById("chart-data");
    if (!source || typeof window.Chart === "undefined") return;
    JSON.parse(source.textContent).forEach(function (chart) {
      const canvas = document.getElementById(chart.id);
      const build = BUILDERS[chart.kind];
      if (canvas && build) new window.Chart(canvas, build(chart));
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
