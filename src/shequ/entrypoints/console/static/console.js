/* shequ console: draws the charts whose data the page embeds, and a copy button. */
(function () {
  "use strict";

  var FONT = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() ||
    "sans-serif";

  function lineOption(data) {
    return {
      animation: false,
      textStyle: { fontFamily: FONT },
      color: ["#2f6bff"],
      grid: { left: 48, right: 24, top: 24, bottom: 36 },
      tooltip: { trigger: "axis" },
      xAxis: {
        type: "category",
        data: data.labels,
        boundaryGap: false,
        axisLine: { lineStyle: { color: "#c9d1de" } },
        axisTick: { show: false },
        axisLabel: { color: "#7b8497" }
      },
      yAxis: {
        type: "value",
        minInterval: 1,
        splitLine: { lineStyle: { color: "#eef1f6" } },
        axisLabel: { color: "#7b8497" }
      },
      series: [{
        name: data.name,
        type: "line",
        data: data.values,
        smooth: false,
        symbol: "circle",
        symbolSize: 6,
        lineStyle: { width: 2.5 },
        areaStyle: {
          color: {
            type: "linear", x: 0, y: 0, x2: 0, y2: 1,
            colorStops: [
              { offset: 0, color: "rgba(47, 107, 255, 0.28)" },
              { offset: 1, color: "rgba(47, 107, 255, 0.02)" }
            ]
          }
        }
      }]
    };
  }

  function drawCharts(root) {
    if (typeof echarts === "undefined") {
      return;
    }
    root.querySelectorAll("[data-chart='line']").forEach(function (element) {
      var source = document.getElementById(element.dataset.source);
      if (!source || echarts.getInstanceByDom(element)) {
        return;
      }
      var chart = echarts.init(element, null, { renderer: "canvas" });
      chart.setOption(lineOption(JSON.parse(source.textContent)));
      window.addEventListener("resize", function () { chart.resize(); });
    });
    // Pages whose server builds the whole ECharts option (funnel, Sankey, heatmap, ...).
    root.querySelectorAll("[data-chart='option']").forEach(function (element) {
      var source = document.getElementById(element.dataset.source);
      if (!source || echarts.getInstanceByDom(element)) {
        return;
      }
      var option = JSON.parse(source.textContent);
      option.textStyle = { fontFamily: FONT };
      var chart = echarts.init(element, null, { renderer: "canvas" });
      chart.setOption(option);
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  function copyOnClick(event) {
    var button = event.target.closest("[data-copy]");
    if (!button) {
      return;
    }
    var target = document.querySelector(button.dataset.copy);
    if (target && navigator.clipboard) {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        button.textContent = button.dataset.copied;
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });
  document.addEventListener("click", copyOnClick);
})();
