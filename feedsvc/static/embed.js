/* feedsvc widgets: <div data-feedsvc-country="th" data-limit="5"></div> (or data-feedsvc-topic="…")
 * shows the latest releases inside the partner's page, as text (never as HTML).
 * The same script resizes feedsvc iframes to their content. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var origin = new URL(script.src, document.baseURI).origin;
  var COUNTRY = /^[a-z]{2}$/;
  var TOPIC = /^[a-z0-9]+(?:[-_.][a-z0-9]+)*$/;
  var MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December"];

  function feedPath(el) {
    var country = (el.getAttribute("data-feedsvc-country") || "").toLowerCase();
    if (COUNTRY.test(country)) { return "countries/" + country; }
    var topic = el.getAttribute("data-feedsvc-topic") || "";
    return TOPIC.test(topic) ? "topics/" + topic : null;
  }

  function limitOf(el) {
    var n = parseInt(el.getAttribute("data-limit") || "5", 10);
    return n >= 1 && n <= 100 ? n : 5;
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener";
    a.textContent = text;
    return a;
  }

  function webUrl(value) {
    try {
      var url = new URL(String(value));
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function longDate(iso) {
    // The date as published, in the publisher's timezone: the first ten characters.
    var m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso || ""));
    return m ? Number(m[3]) + " " + MONTHS[Number(m[2]) - 1] + " " + m[1] : null;
  }

  function item(entry, language) {
    var href = webUrl(entry.url);
    if (!href || typeof entry.title !== "string") { return null; }
    var li = document.createElement("li");
    var a = link(href, entry.title);
    // A title in another language than the feed's says so (a screen reader reads it in it).
    if (typeof entry.language === "string" && entry.language !== language) {
      a.lang = entry.language;
    }
    li.appendChild(a);
    var date = longDate(entry.date_published);
    if (date) {
      var time = document.createElement("time");
      time.dateTime = String(entry.date_published).slice(0, 10);
      time.textContent = date;
      li.appendChild(document.createTextNode(" "));
      li.appendChild(time);
    }
    return li;
  }

  function render(el, feed) {
    var list = document.createElement("ul");
    list.className = "feedsvc-list";
    (Array.isArray(feed.items) ? feed.items : []).forEach(function (entry) {
      var li = item(entry || {}, feed.language);
      if (li) { list.appendChild(li); }
    });
    el.replaceChildren(list);
    el.setAttribute("data-feedsvc-state", "ready");
  }

  function fallback(el, path) {
    el.replaceChildren(link(origin + "/feeds/" + path + ".rss", "Latest releases (feed)"));
    el.setAttribute("data-feedsvc-state", "failed");
  }

  function load(el) {
    if (el.hasAttribute("data-feedsvc-state")) { return; }
    var path = feedPath(el);
    el.setAttribute("data-feedsvc-state", "loading");
    if (!path) { el.setAttribute("data-feedsvc-state", "failed"); return; }
    fetch(origin + "/feeds/" + path + ".json?limit=" + limitOf(el),
          { credentials: "omit", mode: "cors" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (feed) { render(el, feed); }, function () { fallback(el, path); });
  }

  function resize(event) {
    var data = event.data;
    if (event.origin !== origin || !data || data.feedsvc !== "height") { return; }
    var height = Number(data.height);
    if (!(height > 0 && height < 20000)) { return; }
    document.querySelectorAll("iframe").forEach(function (frame) {
      if (frame.contentWindow === event.source) { frame.style.height = Math.ceil(height) + "px"; }
    });
  }

  function scan() {
    document.querySelectorAll("[data-feedsvc-country], [data-feedsvc-topic]").forEach(load);
  }

  var flag = "feedsvcEmbed:" + origin;
  if (!window[flag]) {
    window[flag] = true;
    window.addEventListener("message", resize);
    // A frame of the service that loaded before this script told its height to nobody: ask
    // each again. "*": one still loading is the page's own blank document for a moment (a
    // named origin would log a warning), and the question says nothing.
    document.querySelectorAll("iframe[src]").forEach(function (frame) {
      var from = new URL(frame.getAttribute("src"), document.baseURI).origin;
      if (from === origin && frame.contentWindow) {
        frame.contentWindow.postMessage({ feedsvc: "measure" }, "*");
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", scan);
  } else {
    scan();
  }
})();
