(function () {
  "use strict";
  // Tell the page around this frame how tall the list is, so it can size the frame to it.
  function post() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    window.parent.postMessage({ feedsvc: "height", height: height }, "*");
  }
  window.addEventListener("load", post);
  if (window.ResizeObserver) { new ResizeObserver(post).observe(document.documentElement); }
  // The page's embed.js may start after this frame has told its height (it loads async):
  // it then asks again, and is told.
  window.addEventListener("message", function (event) {
    if (event.source === window.parent && event.data && event.data.feedsvc === "measure") {
      post();
    }
  });
})();
