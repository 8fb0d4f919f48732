// The capture page, live: asks the console for test events newer than the newest shown, every
// few seconds, and puts them on top. The HTML of each comes from the server (escaped there, in
// the page's language); without this script the page refreshes itself instead.
(function () {
  "use strict";
  var list = document.getElementById("captured");
  var status = document.getElementById("capture-status");
  if (!list || !status || !window.fetch) {
    return;
  }
  var after = Number(list.dataset.after) || 0;
  var every = (Number(list.dataset.every) || 2) * 1000;
  var keep = 50;  // items kept on the page

  function poll() {
    var url = list.dataset.poll + (list.dataset.poll.indexOf("?") < 0 ? "?" : "&") +
      "after=" + encodeURIComponent(after);
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (response.status === 401) {
          status.textContent = status.dataset.stopped;
          return null;
        }
        return response.ok ? response.json() : {events: [], checked: null};
      })
      .then(function (data) {
        if (data === null) {
          return;  // signed out: stop
        }
        show(data);
        window.setTimeout(poll, every);
      })
      .catch(function () {
        window.setTimeout(poll, every * 2);  // the bridge restarting: try again, slower
      });
  }

  function show(data) {
    var events = data.events || [];
    for (var i = events.length - 1; i >= 0; i--) {  // oldest first, each on top
      if (events[i].id > after) {
        list.insertAdjacentHTML("afterbegin", events[i].html);
        after = events[i].id;
      }
    }
    if (events.length) {
      document.getElementById("capture-news").textContent =
        status.dataset.news.replace("N", String(events.length));
      var empty = document.getElementById("captured-empty");
      if (empty) {
        empty.remove();
      }
    }
    while (list.children.length > keep) {
      list.removeChild(list.lastElementChild);
    }
    if (data.checked) {
      status.textContent = status.dataset.checked.replace("TIME", data.checked);
    }
  }

  window.setTimeout(poll, every);
}());
