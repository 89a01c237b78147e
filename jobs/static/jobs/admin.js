/* The jobs admin, without a build step: the schedule form's live preview (description and next
   runs from the preview endpoint), showing only the timing fields of the chosen kind, and
   refreshing a run's page while the run is active. Text is set with textContent only. */
(function () {
  "use strict";

  function schedulePreview(box) {
    const form = box.closest("form");
    if (!form || !form.elements.namedItem("kind")) return; // read-only view: nothing to edit
    const names = ["job", "kind", "cron", "interval_seconds", "timezone", "run_at_0", "run_at_1",
      "starts_at_0", "starts_at_1", "ends_at_0", "ends_at_1"];
    const byId = (id) => document.getElementById(id);
    let timer = null;
    let latest = 0;

    function cell(row, text) {
      const td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    }

    function showJob(job) {
      const note = byId("jobs-schema-note");
      const schema = byId("jobs-payload-schema");
      if (!job || !note || !schema) return;
      if (job.schema) {
        note.textContent = job.name + " expects (JSON schema):";
        schema.textContent = JSON.stringify(job.schema, null, 2);
        schema.hidden = false;
      } else {
        note.textContent = job.name + " declares no schema: any JSON object is accepted.";
        schema.hidden = true;
      }
    }

    function render(data, ok) {
      const errors = byId("jobs-preview-errors");
      const table = byId("jobs-preview-table");
      const rows = byId("jobs-preview-rows");
      const empty = byId("jobs-preview-empty");
      errors.replaceChildren();
      rows.replaceChildren();
      if (!ok) {
        for (const [field, messages] of Object.entries(data.errors || {})) {
          for (const message of messages) {
            const li = document.createElement("li");
            li.textContent = (field === "__all__" ? "" : field.replace(/_/g, " ") + ": ") + message;
            errors.appendChild(li);
          }
        }
        errors.hidden = false;
        table.hidden = true;
        empty.hidden = true;
        byId("jobs-preview-description").textContent = "";
        box.dataset.state = "error";
        showJob(data.job);
        return;
      }
      errors.hidden = true;
      byId("jobs-preview-description").textContent = data.description;
      byId("jobs-preview-tz").textContent = data.timezone;
      data.fire_times.forEach((slot, i) => {
        const tr = document.createElement("tr");
        if (slot.note) tr.className = "jobs-dst";
        [String(i + 1), slot.local, slot.utc, slot.relative, slot.note].forEach((t) => cell(tr, t));
        rows.appendChild(tr);
      });
      table.hidden = data.fire_times.length === 0;
      empty.textContent = data.empty;
      empty.hidden = !data.empty;
      box.dataset.state = "ok";
      showJob(data.job);
    }

    function update() {
      const url = new URL(box.dataset.url, window.location.href);
      for (const name of names) {
        const field = form.elements.namedItem(name);
        if (field && "value" in field) url.searchParams.set(name, field.value);
      }
      const mine = ++latest;
      box.dataset.state = "loading";
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => response.json().then((data) => [response.ok, data]))
        .then(([ok, data]) => { if (mine === latest) render(data, ok); })
        .catch(() => {
          if (mine === latest) render({ errors: { __all__: ["The preview is unavailable."] } }, false);
        });
    }

    function toggleKind() {
      const kind = form.elements.namedItem("kind").value;
      const shown = { cron: ["cron"], interval: ["interval_seconds"], once: ["run_at"] };
      for (const field of ["cron", "interval_seconds", "run_at"]) {
        const row = form.querySelector(".field-" + field);
        if (row) row.hidden = !(shown[kind] || []).includes(field);
      }
    }

    function changed(event) {
      const name = event.target && event.target.name;
      if (!names.includes(name)) return;
      if (name === "kind") toggleKind();
      clearTimeout(timer);
      timer = setTimeout(update, 250);
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    toggleKind();
  }

  function refreshWhileActive(marker) {
    const delay = parseInt(marker.dataset.jobsRefresh, 10) || 2000;
    setTimeout(function reload() {
      // Do not pull the page away from someone choosing an action.
      if (document.activeElement && document.activeElement.closest("select, textarea")) {
        setTimeout(reload, delay);
      } else {
        window.location.reload();
      }
    }, delay);
  }

  function init() {
    const box = document.getElementById("jobs-preview");
    if (box) schedulePreview(box);
    const marker = document.querySelector("[data-jobs-refresh]");
    if (marker) refreshWhileActive(marker);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
