// "Generate monthly report": POST, then follow the status resource until the PDF is ready.
(function () {
  "use strict";
  const form = document.getElementById("report-form");
  if (!form) return;
  const input = document.getElementById("month");
  const button = document.getElementById("generate");
  const error = document.getElementById("month-error");
  const box = document.getElementById("report-progress");
  const bar = document.getElementById("report-bar");
  const status = document.getElementById("report-status");
  const link = document.getElementById("report-download");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  let busy = false; // a report is being requested or followed: further presses are ignored

  // The live region is always in the page (a region revealed and filled at once is often not
  // announced), and it is written only when its text changes, so each poll is not re-read.
  function say(text) {
    if (status.textContent !== text) status.textContent = text;
  }

  function fail(text) {
    error.textContent = text; // role=alert: announced when its text appears
    input.setAttribute("aria-invalid", "true");
  }

  function clearError() {
    error.textContent = "";
    input.removeAttribute("aria-invalid");
  }

  function setBusy(value) {
    busy = value;
    // aria-disabled rather than disabled: a disabled button drops keyboard focus.
    button.setAttribute("aria-disabled", String(value));
  }

  // The body as JSON, or null when it is not JSON (a proxy's error page, an HTML 404).
  async function readJSON(response) {
    if (!(response.headers.get("Content-Type") || "").includes("application/json")) return null;
    try {
      return await response.json();
    } catch (e) {
      return null;
    }
  }

  function toLogin(body) {
    const login = (body && body.login_url) || "/accounts/login/";
    window.location.href = login + "?next=" + encodeURIComponent(window.location.pathname);
  }

  function show(report) {
    box.hidden = false;
    bar.value = report.progress;
    if (report.download_url) {
      link.href = report.download_url;
      link.hidden = false;
      say("Your report is ready.");
    } else if (report.state === "failed") {
      say(report.message);
    } else {
      say(report.message + " (" + report.progress + "%)");
    }
  }

  async function follow(url) {
    let delay = 500;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 1.5, 5000); // back off: a long report is not polled hard
      let response;
      try {
        response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      } catch (e) {
        say("Connection lost; retrying…");
        continue;
      }
      if (response.status === 401) return toLogin(await readJSON(response));
      if (response.status >= 500 || response.status === 429) {
        say("The server is busy; retrying…"); // a deploy or an overload: it passes
        continue;
      }
      const report = response.ok ? await readJSON(response) : null;
      if (!report) {
        say("Could not read the report's progress (HTTP " + response.status + "). Reload the page to try again.");
        return;
      }
      show(report);
      if (report.state === "ready" || report.state === "failed") return;
    }
  }

  async function request() {
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
        body: new FormData(form),
        credentials: "same-origin",
      });
    } catch (e) {
      fail("The server could not be reached. Check your connection and try again.");
      return;
    }
    const body = await readJSON(response);
    if (response.status === 202 && body) {
      show(body);
      await follow(response.headers.get("Location") || body.status_url);
    } else if (response.status === 400 && body && body.errors) {
      fail((body.errors.month || body.errors.__all__ || ["Invalid input."]).join(" "));
    } else if (response.status === 429 && body) {
      fail(body.error + " (retry in " + response.headers.get("Retry-After") + " s)");
    } else if (response.status === 401) {
      toLogin(body);
    } else if (response.status === 403) {
      fail((body && body.error) || "Your session has changed; reload the page and try again.");
    } else if (response.status === 404) {
      fail("Your account is not a member of a tenant any more; reload the page.");
    } else {
      fail("Something went wrong (HTTP " + response.status + "). Please try again in a moment.");
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (busy) return;
    clearError();
    link.hidden = true;
    setBusy(true);
    try {
      await request();
    } finally {
      setBusy(false);
    }
  });

  // After a reload the page goes on following the newest report still in progress.
  if (form.dataset.follow) {
    setBusy(true);
    follow(form.dataset.follow).finally(() => setBusy(false));
  }
})();
