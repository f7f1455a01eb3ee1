/* weige map layers fetched from the app by box and zoom (maps.elements.RemoteLayer).
 *
 * weige.remoteLayer(options) is a Leaflet layer group that, while on the map, asks
 * options.url for the features in the visible box (padded by a fifth) at the current zoom,
 * again after a move that changes the zoom or leaves the box it asked for (a small pan, such
 * as a popup's, keeps the drawing and the popup), and draws the answer with the renderer
 * named by options.style. Below options.minZoom it draws nothing and says so in the map's
 * status line. A newer request wins over an older one still in flight. After drawing, the map container carries
 * data-drawn-<name>="<count>" (what the browser tests and the benchmark read) and the map
 * fires "weige:drawn" with {name, count}.
 *
 * With options.early, the page has already asked for the first answer before Leaflet loaded
 * (maps.remote.EARLY_SCRIPT, weige.early): the first drawing uses it when the map's zoom is
 * in the zoom range it was asked for and, if it was asked for a box, the box holds the
 * map's view; else (or if it failed) the layer asks as usual. When that answer is in by the
 * time the layer is added to a map that has its view, the first chunk is drawn right away,
 * while the page's script is still building the map: the first features show with the map.
 *
 * Text from the server is escaped before it goes into popups and tooltips. Labels come from
 * the page (options.labels), translated by Django.
 */
(function () {
    "use strict";
    var weige = window.weige = window.weige || {};

    var BAND = {ok: "#2e7d32", thin: "#f9a825", missing: "#c62828"};
    var WAIT_MS = 1500;
    var CHUNK = 500;  // features added per animation frame
    var FIRST_CHUNK = 20;  // the first frame of a layer's first drawing: shows sooner
    var POINT_STYLES = {problems: true, workstations: true, incidents: true};
    var DENSITY = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"];

    function esc(value) {
        return String(value === null || value === undefined ? "" : value).replace(
            /[&<>"']/g,
            function (c) {
                return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
            }
        );
    }

    function row(label, value) {
        return "<tr><th>" + esc(label) + "</th><td>" + esc(value) + "</td></tr>";
    }

    function link(url, text) {
        return '<a href="' + esc(url) + '">' + esc(text) + "</a>";
    }

    function percent(rate) {
        return rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + "%";
    }

    function table(rows) {
        return '<table class="map-popup">' + rows.join("") + "</table>";
    }

    function withParam(url, name, value) {
        return url + (url.indexOf("?") < 0 ? "?" : "&") + name + "=" + encodeURIComponent(value);
    }

    // A popup built from the feature's summary `p` by render(p); when it opens and
    // complete(p) is false it asks the layer's url with ?name=value (at the map's zoom) for
    // the whole feature and shows that (kept for the next opening), or says the fetch failed.
    function popupWithFacts(lyr, o, p, name, value, render, complete) {
        var full = null;
        lyr.bindPopup(function () { return render(full || p); });
        lyr.on("popupopen", function (e) {
            if (full || complete(p)) { return; }
            var url = withParam(withParam(o.url, name, value), "zoom", e.target._map.getZoom());
            fetch(url,
                  {credentials: "same-origin", headers: {"Accept": "application/json"}})
                .then(function (response) {
                    if (!response.ok) { throw new Error(String(response.status)); }
                    return response.json();
                })
                .then(function (answer) {
                    if (!answer.features.length) { throw new Error("gone"); }
                    full = answer.features[0].properties;
                    e.popup.setContent(render(full));
                })
                .catch(function () {
                    var more = e.popup.getElement().querySelector(".weige-popup-more");
                    if (more) { more.textContent = o.labels.failed; }
                });
        });
    }

    // ---- answers -----------------------------------------------------------------------

    // What layers ask for (maps.remote.ACCEPT): the units layer answers a GeoJSON text
    // sequence (RFC 8142), any other layer GeoJSON.
    var ACCEPT = "application/geo+json-seq, application/geo+json;q=0.9, application/json;q=0.8";

    // An answer's data from its Content-Type and text. A text sequence becomes its first
    // text (the collection's members) with `features` holding the features' texts still
    // unparsed and `lazy` set: _draw parses them a chunk at a time, so the first features
    // are drawn without waiting for the whole answer to be parsed.
    function read(type, text) {
        if (type.indexOf("application/geo+json-seq") !== 0) { return JSON.parse(text); }
        var texts = text.split("\x1e");  // texts[0] is the empty string before the first RS
        var data = JSON.parse(texts[1]);
        data.features = texts.slice(2);
        data.lazy = true;
        return data;
    }

    function parsed(features, lazy) {
        return lazy ? JSON.parse("[" + features.join(",") + "]") : features;
    }

    // ---- renderers: (data, options) -> {layer, count} -------------------------------------

    // A GeoJSON layer whose features the RemoteLayer adds in chunks (see _draw).
    function geo(data, options) {
        var layer = L.geoJSON(null, options);
        layer._weigePending = data.features || [];
        layer._weigeLazy = Boolean(data.lazy);
        return layer;
    }

    function unitUrl(o, code) {
        return o.unitUrl.replace("{code}", encodeURIComponent(code));
    }

    function unitsRenderer(data, o) {
        var L_ = o.labels;
        var layer = geo(data, {
            style: function (f) {
                var p = f.properties;
                return {
                    color: p.problems ? "#6a1b9a" : "#37474f",
                    weight: p.problems ? 3 : 1,
                    dashArray: p.problems ? "5 3" : null,
                    fillColor: BAND[p.band] || "#9e9e9e",
                    fillOpacity: 0.45
                };
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                popupWithFacts(lyr, o, p, "code", p.code, unitHtml, function (q) {
                    return q.households !== undefined;
                });
                lyr.bindTooltip(function () { return esc(p.name); });
            }
        });
        // On a map view a unit carries its summary (maps.layers.UNIT_SUMMARY); the popup
        // shows it and fetches the rest when it opens.
        function unitHtml(p) {
            var html = "<h4>" + link(unitUrl(o, p.code), p.name) + "</h4><p>" + esc(p.code)
                + "</p>";
            if (p.households === undefined) {
                var rows = [row(L_.band, L_["band_" + p.band] || p.band)];
                if (p.problems) { rows.push(row(L_.problems, p.problems)); }
                return html + table(rows) + '<p class="weige-popup-more">' + esc(L_.loading)
                    + "</p>";
            }
            return html + table(unitRows(p));
        }
        // built when a popup opens: thousands of units are drawn at district zoom
        function unitRows(p) {
            var rows = [
                row(L_.households, p.households),
                row(L_.population, p.population),
                row(L_.band, L_["band_" + p.band] || p.band)
            ];
            if (data.kind === "grid") {
                rows.push(row(L_.chief, p.chief || L_.none));
                rows.push(row(L_.members, p.members));
                rows.push(row(L_.members_per_100, p.members_per_100_households === null
                    ? "—" : p.members_per_100_households));
            } else {
                rows.push(row(L_.liaison, p.liaison || L_.none));
            }
            rows.push(row(L_.building_heads, p.building_heads));
            if (p.problems) { rows.push(row(L_.problems, p.problems)); }
            return rows;
        }
        return {layer: layer, count: data.features.length};
    }

    function problemsRenderer(data, o) {
        var layer = geo(data, {
            pointToLayer: function (f, latlng) {
                return L.circleMarker(latlng, {
                    radius: 7, color: "#ffffff", weight: 2, fillOpacity: 0.95,
                    fillColor: f.properties.severity === "error" ? "#d50000" : "#ff6d00"
                });
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                lyr.bindPopup("<h4>" + esc(o.labels["problem_" + p.type] || p.type) + "</h4><p>"
                    + esc(p.message) + "</p>" + table([row(o.labels.units, p.codes.join(", "))]));
            }
        });
        return {layer: layer, count: data.features.length};
    }

    function courtyardsRenderer(data, o) {
        var layer = geo(data, {
            style: function (f) {
                var p = f.properties;
                if (p.former) {
                    return {color: "#6d4c41", weight: 1.5, dashArray: "4 4", fillOpacity: 0};
                }
                return {color: p.merged ? "#4527a0" : "#1565c0", weight: p.merged ? 3 : 2,
                        fillOpacity: 0.12};
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                var rows = [row(L_(o, "households"), p.households),
                            row(L_(o, "population"), p.population)];
                if (p.former) {
                    rows.push(row(o.labels.merged_into, p.merged_into));
                    if (p.merged_on) { rows.push(row(o.labels.merged_on, p.merged_on)); }
                } else {
                    rows.push(row(o.labels.building_heads, p.building_heads));
                    rows.push(row(o.labels.volunteers, p.volunteers));
                    if (p.merged) { rows.push(row(o.labels.merged, o.labels.yes)); }
                }
                lyr.bindPopup("<h4>" + link(p.url, p.name) + "</h4>" + table(rows));
            }
        });
        return {layer: layer, count: data.features.length};
    }

    function L_(o, key) { return o.labels[key] || key; }

    function stationHtml(p, o) {
        var html = "<h4>" + esc(p.name) + (p.pilot ? " · " + esc(o.labels.pilot) : "") + "</h4>";
        if (!p.units) {  // a map view's summary: the rest is being fetched
            return html + '<p class="weige-popup-more">' + esc(o.labels.loading) + "</p>";
        }
        var units = p.units.map(function (u) { return link(u.url, u.name); }).join("、");
        var staff = p.staff.map(function (s) {
            return esc(s.role) + " " + s.count + (s.names.length ? "（" + esc(s.names.join("、")) + "）" : "");
        }).join("<br>");
        return html + table([
            row(o.labels.address, p.address),
            row(o.labels.open, p.open),
            row(o.labels.overdue, p.overdue),
            row(o.labels.on_time_closure_30d, percent(p.on_time_closure_30d))
        ]) + "<p><b>" + esc(o.labels.units) + "</b> " + units + "</p><p><b>"
            + esc(o.labels.staff) + "</b><br>" + (staff || esc(o.labels.none)) + "</p>";
    }

    function workstationsRenderer(data, o) {
        var layer = geo(data, {
            pointToLayer: function (f, latlng) {
                return L.circleMarker(latlng, {
                    radius: 9, color: "#ffffff", weight: 2, fillOpacity: 1,
                    fillColor: f.properties.pilot ? "#00897b" : "#546e7a"
                });
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                popupWithFacts(lyr, o, p, "id", f.id, function (q) {
                    return stationHtml(q, o);
                }, function (q) { return !!q.units; });
                lyr.bindTooltip(function () { return esc(p.name); });
            }
        });
        return {layer: layer, count: data.features.length};
    }

    function workstationUnitsRenderer(data, o) {
        var layer = geo(data, {
            style: function (f) {
                return {color: f.properties.pilot ? "#00897b" : "#546e7a", weight: 2,
                        fillOpacity: f.properties.pilot ? 0.25 : 0.1};
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                lyr.bindPopup("<h4>" + link(p.url, p.name) + "</h4>"
                    + table([row(o.labels.workstations, p.workstations.join("、"))]));
            }
        });
        return {layer: layer, count: data.features.length};
    }

    function clusterIcon(p) {
        var size = p.count < 10 ? 30 : p.count < 100 ? 36 : p.count < 1000 ? 44 : 52;
        var cls = "weige-cluster" + (p.overdue ? " weige-cluster-late" : "");
        return L.divIcon({
            html: "<div><span>" + p.count + "</span></div>",
            className: cls,
            iconSize: L.point(size, size)
        });
    }

    function incidentsRenderer(data, o) {
        var map = o._map;
        var layer = geo(data, {
            pointToLayer: function (f, latlng) {
                var p = f.properties;
                if (p.cluster) {
                    var m = L.marker(latlng, {icon: clusterIcon(p)});
                    m.on("click", function () { map.setView(latlng, map.getZoom() + 2); });
                    return m;
                }
                return L.circleMarker(latlng, {
                    radius: 7, color: "#ffffff", weight: 2, fillOpacity: 1,
                    fillColor: p.overdue ? "#d50000" : "#0b5cad"
                });
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                if (p.cluster) {
                    lyr.bindTooltip(esc(o.labels.cluster.replace("%(count)s", p.count)
                        .replace("%(overdue)s", p.overdue)));
                    return;
                }
                lyr.bindPopup("<h4>" + link(p.url, "#" + p.number + " " + p.category) + "</h4>"
                    + table([
                        row(o.labels.state, p.state_label),
                        row(o.labels.reported_at, p.reported_at),
                        row(o.labels.grid, p.grid),
                        row(o.labels.overdue, p.overdue ? o.labels.yes : o.labels.no)
                    ]));
            }
        });
        return {layer: layer, count: data.features.length};
    }

    function heatRenderer(data, o) {
        var layer = L.heatLayer(data.points, {radius: 22, blur: 18, max: Math.max(1, data.max)});
        return {layer: layer, count: data.points.length};
    }

    function densityColour(n, max) {
        if (!n) { return DENSITY[0]; }
        var i = Math.min(DENSITY.length - 1, 1 + Math.floor((n / Math.max(1, max)) * (DENSITY.length - 1)));
        return DENSITY[i];
    }

    function densityRenderer(data, o) {
        var layer = geo(data, {
            style: function (f) {
                return {color: "#5d4037", weight: 1, fillOpacity: 0.6,
                        fillColor: densityColour(f.properties.open, data.max_open)};
            },
            onEachFeature: function (f, lyr) {
                var p = f.properties;
                lyr.bindPopup(function () {
                    return "<h4>" + link(p.url, p.name) + "</h4>" + table([
                        row(o.labels.open, p.open), row(o.labels.households, p.households)
                    ]);
                });
            }
        });
        return {layer: layer, count: data.features.length};
    }

    var RENDERERS = {
        units: unitsRenderer,
        problems: problemsRenderer,
        courtyards: courtyardsRenderer,
        workstations: workstationsRenderer,
        workstation_units: workstationUnitsRenderer,
        incidents: incidentsRenderer,
        heat: heatRenderer,
        density: densityRenderer
    };

    // ---- the status line ------------------------------------------------------------------

    // Each layer's line is kept on the map too, for a status control added after the layer
    // has said something (a layer drawn while the page's script is still building the map).
    function status(map, name, text) {
        map._weigeStatus = map._weigeStatus || {};
        map._weigeStatus[name] = text;
        var box = map.getContainer().querySelector(".weige-status");
        if (!box) { return; }
        var line = box.querySelector('[data-layer="' + name + '"]');
        if (!text) { if (line) { line.remove(); } return; }
        if (!line) {
            line = document.createElement("div");
            line.setAttribute("data-layer", name);
            box.appendChild(line);
        }
        line.textContent = text;
    }

    weige.RemoteLayer = L.LayerGroup.extend({
        initialize: function (options) {
            L.LayerGroup.prototype.initialize.call(this, []);
            this._options = options;
            this._seq = 0;
        },

        onAdd: function (map) {
            L.LayerGroup.prototype.onAdd.call(this, map);
            this._onMap = map;
            map.on("moveend", this._later, this);
            this._later();
        },

        // Moves come in bursts (a page fitting its bounds right after the layers are
        // added, a fling): fetch once the map has been still for a moment. A layer with
        // options.waitFor first lets that layer draw (at most WAIT_MS), so the page's main
        // layer is not slowed down by the others on a small server.
        _later: function () {
            var self = this, map = this._onMap, wait = this._options.waitFor;
            clearTimeout(this._timer);
            if (wait && map && !(map._weigeDrawn || {})[wait] && !this._waitDone) {
                if (this._waiting) { return; }  // the first drawing will call again
                this._waiting = true;
                var go = function (e) {
                    if (!e || e.name === wait) {
                        map.off("weige:drawn", go);
                        clearTimeout(self._waitTimer);
                        self._waiting = false;
                        self._waitDone = true;
                        self._later();
                    }
                };
                map.on("weige:drawn", go);
                this._waitTimer = setTimeout(go, WAIT_MS);
                return;
            }
            // The first fetch goes as soon as the script that added the layer has run: a
            // microtask sees the view its fitBounds set, and an answer already in (the
            // early request) is drawn before the browser next paints the page. Later
            // fetches go once the map has been still for a moment.
            if (!this._fetched) {
                if (this._queued) { return; }
                if (map._loaded && this._earlyIn(map)) {
                    // the early answer is in and the map has its view: drawn now, so the
                    // first features show with the map, before the page's script goes on
                    this._fetched = true;
                    this._refresh();
                    return;
                }
                this._queued = true;
                Promise.resolve().then(function () {
                    self._queued = false;
                    if (self._fetched || !self._onMap) { return; }
                    self._fetched = true;
                    self._refresh();
                });
                return;
            }
            this._timer = setTimeout(function () { self._refresh(); }, 60);
        },

        onRemove: function (map) {
            clearTimeout(this._timer);
            map.off("moveend", this._later, this);
            this._seq += 1;  // answers still in flight are dropped
            this._have = null;
            status(map, this._options.name, "");
            delete map.getContainer().dataset["drawn" + this._key()];
            this._onMap = null;
            L.LayerGroup.prototype.onRemove.call(this, map);
        },

        _key: function () {
            return this._options.name.replace(/(^|_)([a-z])/g, function (m, s, c) {
                return c.toUpperCase();
            });
        },

        // The layer's URL for the box `b` (a LatLngBounds) at the map's zoom.
        url: function (b) {
            var url = this._options.url;
            return url + (url.indexOf("?") < 0 ? "?" : "&") + "bbox=" + [
                b.getWest(), b.getSouth(), b.getEast(), b.getNorth()
            ].map(function (v) { return v.toFixed(6); }).join(",") + "&zoom=" + this._onMap.getZoom();
        },

        // True when the current view lies within what the drawing on the map was asked for
        // (at the same zoom): then a move does not ask again (the drawing stays, and with it
        // an open popup that panned the map to show itself).
        _covered: function (map) {
            var have = this._have;
            return Boolean(have) && have.zoom === map.getZoom()
                && (have.box === null || have.box.contains(map.getBounds()));
        },

        _refresh: function () {
            var map = this._onMap, o = this._options, self = this;
            if (!map) { return; }
            var seq = ++this._seq;  // an answer still in flight is dropped
            if (o.minZoom && map.getZoom() < o.minZoom) {
                this.clearLayers();
                this._have = null;
                map.getContainer().dataset["drawn" + this._key()] = "0";
                status(map, o.name, o.labels.zoom_in);
                return;
            }
            if (this._covered(map)) {  // the drawing stays; it is drawn for this view too
                status(map, o.name, this._have.note);
                map.getContainer().dataset["drawn" + this._key()] = String(this._have.count);
                return;
            }
            status(map, o.name, o.labels.loading);
            // what is asked for: the view padded by a fifth on every side (none: the early
            // answer, everything in the user's scope), at the map's zoom
            var box = null, zoom = map.getZoom();
            var ask = function () {
                if (seq !== self._seq || !self._onMap) {  // moved or removed meanwhile
                    return Promise.reject(new Error("superseded"));
                }
                box = map.getBounds().pad(0.2);
                zoom = map.getZoom();
                return fetch(self.url(box), {
                    credentials: "same-origin", headers: {"Accept": ACCEPT}
                }).then(function (response) {
                    if (!response.ok) { throw new Error(String(response.status)); }
                    var type = response.headers.get("Content-Type") || "";
                    return response.text().then(function (text) { return read(type, text); });
                });
            };
            var early = this._takeEarly(map);
            if (early) { box = early.bounds; }  // what the drawing covers (null: everything)
            var marked = function (data) {  // what the browser tests read
                map.getContainer().dataset["early" + self._key()] = early.url;
                return data;
            };
            var fromEarly = function (got) { return read(got.type, got.text); };
            var draw = function (data) {
                if (seq !== self._seq || !self._onMap) { return; }
                self._draw(data, {zoom: zoom, box: box});
            };
            var failed = function () {
                if (seq === self._seq && self._onMap) { status(map, o.name, o.labels.failed); }
            };
            if (early && early.got) {  // in already: drawn at once
                var data = null;
                try { data = marked(fromEarly(early.got)); } catch (e) { data = null; }
                if (data) {
                    // as a failure in a promise below: said in the status line, and the
                    // page's script goes on building the map
                    try { draw(data); } catch (e) { failed(); }
                    return;
                }
                early = null;  // unreadable: asked again
            }
            (early ? early.answer.then(fromEarly).then(marked, ask) : ask())
                .then(draw)
                .catch(failed);
        },

        // True when the page's early request for this layer has its answer in.
        _earlyIn: function (map) {
            var early = this._options.early && (weige.early || {})[this._earlyKey(map)];
            return Boolean(early && early.got);
        },

        _earlyKey: function (map) { return map.getContainer().id + " " + this._options.name; },

        // The answer the page asked for before Leaflet loaded, if it fits the current view;
        // taken once (later moves ask as usual).
        _takeEarly: function (map) {
            var o = this._options, store = weige.early || {};
            var key = this._earlyKey(map), early = store[key];
            if (!o.early || !early) { return null; }
            delete store[key];
            var zoom = map.getZoom();
            if (zoom < early.low || zoom > early.high) { return null; }
            early.bounds = null;
            if (early.box) {
                early.bounds = L.latLngBounds([early.box[0], early.box[1]],
                                              [early.box[2], early.box[3]]);
                if (!early.bounds.contains(map.getBounds())) { return null; }
            }
            return early;
        },

        // Large answers are added CHUNK features per animation frame (FIRST_CHUNK in the
        // first frame of the first drawing): the first ones show at once and the page stays
        // responsive. The previous drawing stays until the first chunk is in;
        // data-drawn-<name> and "weige:drawn" come after the last.
        _draw: function (data, asked) {
            var map = this._onMap, o = this._options, self = this, seq = this._seq;
            this._have = null;  // until this drawing is complete
            o._map = map;
            var drawn = RENDERERS[o.style](data, o);
            var layer = drawn.layer, pending = layer._weigePending, done = 0;
            var previous = this.getLayers();
            // a smaller first frame when nothing is drawn yet (a redraw keeps the previous
            // drawing until its first frame, so that frame stays full-sized)
            var first = previous.length ? CHUNK : FIRST_CHUNK;
            this.addLayer(layer);
            var order = function () {  // points stay above outlines, whichever came first
                if (layer.bringToFront && POINT_STYLES[o.style]) {
                    layer.bringToFront();
                } else if (layer.bringToBack) {
                    layer.bringToBack();
                }
            };
            var finish = function () {
                order();
                map.getContainer().dataset["drawn" + self._key()] = String(drawn.count);
                map._weigeDrawn = map._weigeDrawn || {};
                map._weigeDrawn[o.name] = true;
                var note = "";
                if (data.total !== undefined) {
                    note = o.labels.total.replace("%(count)s", data.total);
                } else if (!drawn.count) {  // say so rather than leave a blank map
                    note = o.labels.empty.replace("%(layer)s", o.title || o.name);
                }
                status(map, o.name, note);
                self._have = {zoom: asked.zoom, box: asked.box, note: note, count: drawn.count};
                map.fire("weige:drawn", {name: o.name, count: drawn.count});
            };
            var step = function () {
                if (seq !== self._seq || !self._onMap) { return; }  // a newer answer won
                if (pending) {
                    var size = done ? CHUNK : first;
                    layer.addData(parsed(pending.slice(done, done + size), layer._weigeLazy));
                    done += size;
                }
                if (previous) {
                    previous.forEach(function (old) { self.removeLayer(old); });
                    previous = null;
                }
                if (pending && done < pending.length) {
                    if (POINT_STYLES[o.style]) { order(); }
                    if (document.hidden) { setTimeout(step, 0); } else { requestAnimationFrame(step); }
                } else {
                    finish();
                }
            };
            step();
        }
    });

    weige.remoteLayer = function (options) { return new weige.RemoteLayer(options); };

    // A control in the bottom-left corner for the layers' status lines.
    weige.statusControl = function (map) {
        var control = L.control({position: "bottomleft"});
        control.onAdd = function () {
            var div = L.DomUtil.create("div", "weige-status leaflet-bar");
            L.DomEvent.disableClickPropagation(div);
            return div;
        };
        control.addTo(map);
        var said = map._weigeStatus || {};
        Object.keys(said).forEach(function (name) { status(map, name, said[name]); });
        return control;
    };
})();
