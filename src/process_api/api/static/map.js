// GeoJSON outputs drawn on a small map (Leaflet, vendored): the shapes alone, as the server
// fetches no background map from elsewhere. A feature's properties show in its popup, as
// text. Each map says what it drew in data-features (or why not in its text).
"use strict";
(function () {
  if (!window.L) { return; }

  function properties(feature) {
    var table = document.createElement("table");
    var values = (feature && feature.properties) || {};
    Object.keys(values).forEach(function (name) {
      var row = table.insertRow();
      var key = document.createElement("th");
      key.scope = "row";
      key.textContent = name;
      row.appendChild(key);
      var value = values[name];
      row.insertCell().textContent = typeof value === "string" ? value : JSON.stringify(value);
    });
    return table;
  }

  function say(element, message) {
    element.classList.add("map-note");
    element.removeAttribute("role");
    element.textContent = message;
  }

  function draw(element, data) {
    var drawn = 0;
    var layer = L.geoJSON(data, {
      style: {color: "#1f5fa8", weight: 2, fillOpacity: 0.2},
      pointToLayer: function (feature, where) {
        return L.circleMarker(where, {radius: 6, color: "#1f5fa8", fillOpacity: 0.6});
      },
      onEachFeature: function (feature, shape) {
        drawn += 1;
        if (feature.properties && Object.keys(feature.properties).length) {
          shape.bindPopup(properties(feature));
        }
      }
    });
    var bounds = layer.getBounds();
    if (!bounds.isValid()) {
      say(element, "No shapes to draw on a map.");
      return;
    }
    var map = L.map(element, {attributionControl: false, zoomSnap: 0.25});
    layer.addTo(map);
    map.fitBounds(bounds, {padding: [16, 16], maxZoom: 14});
    element.dataset.features = String(drawn);
  }

  Array.prototype.forEach.call(document.querySelectorAll(".map"), function (element) {
    var embedded = element.dataset.geojson;
    try {
      if (embedded) {
        draw(element, JSON.parse(document.getElementById(embedded).textContent));
        return;
      }
      fetch(element.dataset.geojsonSrc, {credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) { draw(element, data); })
        .catch(function (error) { say(element, "The map could not be drawn: " + error.message); });
    } catch (error) {
      say(element, "The map could not be drawn: " + error.message);
    }
  });
})();
