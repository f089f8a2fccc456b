// Links to Airflow's own pages (marked data-airflow-link) from inside Airflow's plugin frame.
//
// Airflow 3 shows a plugin's page in an <iframe sandbox="allow-scripts allow-same-origin allow-forms
// allow-downloads">: no allow-top-navigation (target="_top" is refused: "Unsafe attempt to initiate
// navigation") and no allow-popups (target="_blank" is refused too). A plain link would load a second Airflow
// UI inside the frame. The frame is same-origin, so instead this script hands the address to Airflow's own
// router: a history entry in the top window plus the popstate event its router listens for, which is what
// the browser's Back button does. Opened directly at /cxsync/ (no frame), the link is an ordinary link.
(function () {
  "use strict";

  function airflowWindow() {
    if (window.top === window) return null;
    try {
      // Reading the top window's location throws when it is another origin: then no hand-over.
      return window.top.location.origin === window.location.origin ? window.top : null;
    } catch (err) {
      return null;
    }
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-airflow-link]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var top = airflowWindow();
    if (!top) return;
    var url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin) return;
    event.preventDefault();
    top.history.pushState(null, "", url.pathname + url.search + url.hash);
    top.dispatchEvent(new top.PopStateEvent("popstate", { state: null }));
  });
})();
