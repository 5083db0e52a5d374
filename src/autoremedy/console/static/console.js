// Live updates: the server re-renders a fragment (the runs table, a run's timeline, the approvals, the status header)
// and pushes it over Server-Sent Events when it changes; each replaces the element whose id is the event's name. The
// HTML comes from the same autoescaped templates as the page. EventSource reconnects by itself after a dropped connection.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) {
    return;
  }
  var stream = new EventSource(live.getAttribute("data-live"));
  stream.onopen = function () {
    document.documentElement.setAttribute("data-live-state", "open");
  };
  stream.onerror = function () {
    // CLOSED: the server refused the stream (the session ended); otherwise the browser reconnects by itself.
    var closed = stream.readyState === EventSource.CLOSED;
    document.documentElement.setAttribute("data-live-state", closed ? "closed" : "reconnecting");
    var note = document.getElementById("live-note");
    if (note && closed) {
      note.hidden = false;
    }
  };
  ["runs", "run", "held", "header"].forEach(function (name) {
    stream.addEventListener(name, function (event) {
      var target = document.getElementById(name);
      var incoming = document.createElement("template");
      incoming.innerHTML = event.data;
      if (target && incoming.innerHTML === target.innerHTML) {
        return; // the same as shown (the first message after connecting): keep the nodes, and any click on them
      }
      if (target && !target.contains(document.activeElement)) {
        target.innerHTML = event.data;
      } else if (target) {
        // Someone is typing in a form inside: keep their focus, update once they leave it.
        target.addEventListener("focusout", function once() {
          target.removeEventListener("focusout", once);
          target.innerHTML = event.data;
        });
      }
    });
  });
})();
