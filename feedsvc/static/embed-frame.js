(function () {
  "use strict";
  // Tell the page around this frame how tall the list is, so it can size the frame to it.
  function post() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ feedsvc: "height", height: height }, "*");
  }
  window.addEventListener("load", post);
  if (window.ResizeObserver) { new ResizeObserver(post).observe(document.documentElement); }
})();
