// aidmesh pages work without this file; it adds live lists, the local time zone and
// "use my location". Plain JS, served by the node: no build step, no CDN.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // The browser's offset, so "until 18:00" means 18:00 where the coordinator is.
  document.querySelectorAll("[data-tz]").forEach(function (input) {
    input.value = String(new Date().getTimezoneOffset());
  });

  // Live lists: on each change the node announces, fetch this page again and swap the
  // regions marked data-live. Forms being typed into are never touched.
  var url = document.body.getAttribute("data-live-url");
  if (url && window.EventSource && document.querySelector("[data-live]")) {
    var pending = false;
    var refresh = function () {
      if (pending) { return; }
      pending = true;
      fetch(location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          pending = false;
          if (!html) { return; }
          var next = new DOMParser().parseFromString(html, "text/html");
          document.querySelectorAll("[data-live]").forEach(function (old) {
            var fresh = next.getElementById(old.id);
            if (fresh && fresh.innerHTML !== old.innerHTML) { old.innerHTML = fresh.innerHTML; }
          });
        })
        .catch(function () { pending = false; });
    };
    var source = new EventSource(url);
    source.addEventListener("change", refresh);
  }

  // "Use my location": coordinates go to the node once, with the form; the node keeps
  // only a coarse area.
  document.querySelectorAll("[data-locate]").forEach(function (form) {
    var status = form.querySelector("[data-locate-status]");
    var select = form.querySelector("[data-locate-select]");
    var lat = form.querySelector("[data-lat]") || form.querySelector("[name=lat]");
    var lng = form.querySelector("[data-lng]") || form.querySelector("[name=lng]");
    var locate = function () {
      if (!navigator.geolocation) { return; }
      if (status) { status.textContent = "…"; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        lat.value = pos.coords.latitude.toFixed(5);
        lng.value = pos.coords.longitude.toFixed(5);
        if (status) { status.textContent = "✓"; }
      }, function () {
        if (status) { status.textContent = "✗"; }
      }, { maximumAge: 600000, timeout: 15000 });
    };
    if (select) {
      select.addEventListener("change", function () { if (select.value === "here") { locate(); } });
    }
    var button = form.querySelector("[data-locate-button]");
    if (button) { button.addEventListener("click", locate); }
  });
})();
