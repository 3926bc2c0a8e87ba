/* The success page, live: polls the order's JSON answer and, only when its state changed, swaps in the page's new
   rendering (the server's words, not a copy of them here) and announces the new heading. Without this script the
   page refreshes itself. */
(function () {
  "use strict";
  var order = document.getElementById("order");
  var live = document.getElementById("order-live");
  if (!order || order.getAttribute("data-final") === "true" || !window.fetch || !window.DOMParser) return;

  var noscriptRefresh = document.querySelector("noscript");
  var started = Date.now();
  var delay = 2000;
  var GIVE_UP_AFTER_MS = 30 * 60 * 1000;

  function schedule() {
    if (Date.now() - started > GIVE_UP_AFTER_MS) return;
    window.setTimeout(poll, delay);
    delay = Math.min(Math.round(delay * 1.5), 10000);
  }

  function swapIn(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var fresh = page.getElementById("order");
    if (!fresh) return false;
    fresh = document.importNode(fresh, true);
    order.replaceWith(fresh);
    order = fresh;
    document.title = page.title;
    var heading = fresh.querySelector("h1");
    if (live && heading) live.textContent = heading.textContent;
    return true;
  }

  function poll() {
    fetch(order.getAttribute("data-poll-url"), {headers: {Accept: "application/json"}, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (body) {
        if (body.session.fulfilment === order.getAttribute("data-state")) return schedule();
        return fetch(window.location.href, {headers: {Accept: "text/html"}, credentials: "same-origin"})
          .then(function (response) { return response.text(); })
          .then(function (html) {
            if (!swapIn(html)) return schedule();
            if (order.getAttribute("data-final") !== "true") {
              delay = 2000;
              schedule();
            }
          });
      })
      .catch(schedule);
  }

  if (noscriptRefresh) noscriptRefresh.remove();
  schedule();
})();
