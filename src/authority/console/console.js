// The token console. Every value from the server is put on the page with textContent or
// DOM properties, never parsed as HTML: a token's name or description is whatever its
// creator typed.
(function () {
  "use strict";

  var API = "/console/api";
  var SIGN_IN = "/console/sign-in";
  var PAGE_SIZE = 20;
  var NO_TYPE = "Choose at least one token type: Developer Operations Access or Protected Endpoint Access";
  // The server's rule for a deployment name (`DeploymentAccess::only`), checked here first so
  // a typo is shown at once; the server checks again and its refusal is shown too.
  var DEPLOYMENT_NAME = /^[A-Za-z0-9._-]{1,128}$/;

  var state = { start: 0, search: "", total: 0, canWrite: false, request: 0 };

  function byId(id) { return document.getElementById(id); }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // A session that ended (token deleted or expired, cookie gone) goes back to the sign-in
  // page, which returns here afterwards.
  function signInAgain() {
    location.assign(SIGN_IN + "?next=" + encodeURIComponent("/console"));
  }

  // One JSON call to the console's API: resolves with the body of a success, rejects with
  // an Error whose message is the server's own when it gave one.
  function call(method, path, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Accept": "application/json" }
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(API + path, options).then(function (response) {
      if (response.status === 401) {
        signInAgain();
        throw new Error("Your session has ended; sign in again.");
      }
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (ignored) { parsed = null; }
        if (response.ok) { return parsed; }
        var message = parsed && (parsed.message || parsed.error_description);
        var error = new Error(message || ("The request failed (HTTP " + response.status + ")."));
        error.status = response.status;
        throw error;
      });
    }, function () {
      throw new Error("The token authority cannot be reached.");
    });
  }

  // Dates as the person's own locale shows them: the day in the table, the full time on
  // hover; when a token was last used, as a distance from now ("2 hours ago").
  var dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
  var fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  var relativeFormat = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
    ["hour", 3600], ["minute", 60]];

  function relativeText(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    for (var i = 0; i < UNITS.length; i++) {
      if (Math.abs(seconds) >= UNITS[i][1]) {
        return relativeFormat.format(Math.round(seconds / UNITS[i][1]), UNITS[i][0]);
      }
    }
    return "just now";
  }

  // A <time> for `iso`, or null when there is none (or it cannot be read).
  function timeElement(iso, relative) {
    if (!iso) { return null; }
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return null; }
    var node = element("time", null,
      relative && relativeFormat ? relativeText(date) : dayFormat.format(date));
    node.dateTime = date.toISOString();
    node.title = fullFormat.format(date);
    return node;
  }

  // A table cell showing the time `iso`, or `none` when there is none.
  function timeCell(row, iso, none, relative) {
    var td = cell(row, null, "date");
    td.appendChild(timeElement(iso, relative) || document.createTextNode(none));
    return td;
  }

  function scopesText(scopes) {
    return scopes && scopes.length ? scopes.join(", ") : "None";
  }

  function deploymentsText(deployments) {
    if (deployments === "*") { return "All Deployments"; }
    if (Array.isArray(deployments) && deployments.length) { return deployments.join(", "); }
    return "None";
  }

  // ---- the session ----

  function loadSession() {
    return call("GET", "/session").then(function (session) {
      byId("signed-in-as").textContent = "Signed in as " + session.name;
      state.canWrite = Boolean(session.can_write);
      var note = byId("write-note");
      var create = byId("create");
      create.disabled = !state.canWrite;
      if (state.canWrite) {
        note.hidden = true;
        create.removeAttribute("title");
      } else {
        note.textContent = "Your token (" + session.name + ") can read tokens but not create or " +
          "delete them: that needs the scope write_organization.";
        note.hidden = false;
        create.title = "Needs the scope write_organization";
      }
    });
  }

  byId("sign-out").addEventListener("click", function () {
    fetch(SIGN_IN, { method: "DELETE", credentials: "same-origin", cache: "no-store" })
      .then(function () { location.assign(SIGN_IN); }, function () { location.assign(SIGN_IN); });
  });

  // ---- the list ----

  function cell(row, text, className) {
    var td = element("td", className, text);
    row.appendChild(td);
    return td;
  }

  function tokenRow(token) {
    var row = element("tr");
    row.dataset.uid = token.uid;
    cell(row, token.name, "name");
    cell(row, token.description || "", "description");
    cell(row, scopesText(token.scopes), "scopes");
    cell(row, deploymentsText(token.deployments), "deployments");
    timeCell(row, token.created_at, "", false);
    var expires = timeCell(row, token.expired_at, "Never", false);
    if (token.is_expired) {
      expires.appendChild(document.createTextNode(" "));
      expires.appendChild(element("span", "badge expired", "Expired"));
      row.classList.add("is-expired");
    }
    timeCell(row, token.last_used_at, "Never", true);
    var enabled = token.enabled !== false;
    var status = cell(row, null, "status");
    status.appendChild(element("span", enabled ? "badge enabled" : "badge disabled",
      enabled ? "Enabled" : "Disabled"));
    if (!enabled) { row.classList.add("is-disabled"); }
    cell(row, rateLimitText(token.rate_limit), "rate-limit");
    var quota = cell(row, quotaText(token.quota, token.quota_usage), "quota");
    if (token.quota_usage && token.quota_usage.resets_at) {
      quota.title = "Resets " + new Date(token.quota_usage.resets_at).toISOString().replace(".000Z", "Z");
    }
    cell(row, usageText(token.usage), "usage");

    var actions = cell(row, null, "row-actions");
    actions.appendChild(rowAction(enabled ? "Disable" : "Enable", token,
      function () { setEnabled(token, !enabled); }));
    actions.appendChild(rowAction("Reroll", token, function () { askReroll(token); }));
    var remove = rowAction("Delete", token, function () { askDelete(token); });
    remove.className = "button small danger-quiet";
    actions.appendChild(remove);
    return row;
  }

  // A button of a row: `label` for token `token`, calling `act` when the session may write.
  function rowAction(label, token, act) {
    var button = element("button", "button small", label);
    button.type = "button";
    button.setAttribute("aria-label", label + " token " + token.name);
    if (state.canWrite) {
      button.addEventListener("click", act);
    } else {
      button.disabled = true;
      button.title = "Needs the scope write_organization";
    }
    return button;
  }

  // `100/1m`, as the CLI writes it: the largest unit that divides the window.
  function rateLimitText(limit) {
    if (!limit || typeof limit.limit !== "number" || typeof limit.duration_ms !== "number") {
      return "None";
    }
    var units = [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]];
    for (var i = 0; i < units.length; i++) {
      if (limit.duration_ms % units[i][1] === 0) {
        return limit.limit + "/" + (limit.duration_ms / units[i][1]) + units[i][0];
      }
    }
    return limit.limit + "/" + limit.duration_ms + "ms";
  }

  // `12 / 1000 a day, resets 2026-12-07 00:00 UTC`: the calls the authority counted this
  // period, the quota, and when the count starts again.
  function quotaText(quota, usage) {
    if (!quota || typeof quota.limit !== "number") { return "None"; }
    var used = usage && typeof usage.used === "number" ? usage.used : 0;
    var text = used + " / " + quota.limit + (quota.period === "month" ? " a month" : " a day");
    if (usage && usage.resets_at) {
      var at = new Date(usage.resets_at);
      if (!isNaN(at.getTime())) {
        text += ", resets " + at.toISOString().slice(0, 16).replace("T", " ") + " UTC";
      }
    }
    return text;
  }

  // The `{limit, period}` the API takes for `text` (`1000/day`), null for none, or an error
  // message.
  function parseQuota(text) {
    if (!text) { return { value: null }; }
    var match = /^(\d+)\/(day|month)$/.exec(text);
    if (!match || Number(match[1]) < 1) {
      return { error: "Write the quota as LIMIT/day or LIMIT/month, e.g. 1000/day." };
    }
    return { value: { limit: Number(match[1]), period: match[2] } };
  }

  function usageText(usage) {
    if (!usage) { return "0 / 0 / 0"; }
    return (usage.valid || 0) + " / " + (usage.expired || 0) + " / " + (usage.disabled || 0);
  }

  // The `{limit, duration_ms}` the API takes for `text` (`100/1m`), null for none, or an
  // error message.
  var RATE_UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 };
  function parseRateLimit(text) {
    if (!text) { return { value: null }; }
    var match = /^(\d+)\/(\d+)(ms|s|m|h|d)$/.exec(text);
    if (!match) {
      return { error: "Write the rate limit as LIMIT/DURATION, e.g. 100/1m (units ms, s, m, h, d)." };
    }
    return { value: { limit: Number(match[1]), duration_ms: Number(match[2]) * RATE_UNITS[match[3]] } };
  }

  function showTokens(page) {
    var body = byId("tokens");
    body.replaceChildren();
    var items = page.items || [];
    if (!items.length) {
      var empty = element("tr", "empty");
      var td = element("td", null, state.search ? "No token matches this search." : "No tokens yet.");
      td.colSpan = 12;
      empty.appendChild(td);
      body.appendChild(empty);
    }
    items.forEach(function (token) { body.appendChild(tokenRow(token)); });
    state.total = page.total || 0;
    byId("range").textContent = items.length
      ? (state.start + 1) + "\u2013" + (state.start + items.length) + " of " + state.total
      : "0 of " + state.total;
    byId("previous").disabled = state.start === 0;
    byId("next").disabled = state.start + items.length >= state.total;
  }

  function loadTokens() {
    // Only the answer to the latest request is shown: a slow answer to an older search must
    // not replace a newer one.
    var request = ++state.request;
    var query = "?start=" + state.start + "&count=" + PAGE_SIZE +
      "&search=" + encodeURIComponent(state.search);
    return call("GET", "/tokens" + query).then(function (page) {
      if (request !== state.request) { return; }
      // A deletion may have emptied the last page: show the one before it.
      if (!(page.items || []).length && state.start > 0) {
        state.start = Math.max(0, state.start - PAGE_SIZE);
        return loadTokens();
      }
      byId("list-error").textContent = "";
      showTokens(page);
    }, function (error) {
      if (request === state.request) { byId("list-error").textContent = error.message; }
    });
  }

  var searchTimer = null;
  byId("search").addEventListener("input", function (event) {
    clearTimeout(searchTimer);
    var value = event.target.value.trim();
    searchTimer = setTimeout(function () {
      state.search = value;
      state.start = 0;
      loadTokens();
    }, 250);
  });

  byId("previous").addEventListener("click", function () {
    state.start = Math.max(0, state.start - PAGE_SIZE);
    loadTokens();
  });
  byId("next").addEventListener("click", function () {
    state.start += PAGE_SIZE;
    loadTokens();
  });

  // ---- creating a token ----

  var createDialog = byId("create-dialog");
  var createForm = byId("create-form");
  var createError = byId("create-error");
  var devops = byId("devops-access");
  var endpoint = byId("endpoint-access");
  var allDeployments = byId("all-deployments");
  var knownDeployments = byId("known-deployments");
  var deploymentChoices = byId("deployment-choices");
  var deploymentsNote = byId("deployments-note");
  var otherDeployments = byId("other-deployments");

  function syncAccess() {
    byId("scopes").disabled = !devops.checked;
    byId("deployment-access").disabled = !endpoint.checked;
    var named = endpoint.checked && !allDeployments.checked;
    knownDeployments.disabled = !named;
    otherDeployments.disabled = !named;
  }

  // The deployments the authority has seen (protected services say which one they protect
  // when they ask about a token), as checkboxes with when each was last seen. Asked again
  // each time the dialog opens; only the latest answer is shown.
  var deploymentsRequest = 0;
  function loadDeployments() {
    var request = ++deploymentsRequest;
    deploymentChoices.replaceChildren();
    deploymentsNote.textContent = "Looking for the deployments protected services reported\u2026";
    call("GET", "/deployments").then(function (answer) {
      if (request !== deploymentsRequest) { return; }
      var items = (answer && answer.items) || [];
      items.forEach(function (deployment, index) {
        deploymentChoices.appendChild(deploymentChoice(deployment, index));
      });
      deploymentsNote.textContent = items.length ? "" :
        "No protected service has reported a deployment yet: type its name under Other deployments.";
    }, function (error) {
      if (request !== deploymentsRequest) { return; }
      deploymentsNote.textContent = "The deployments seen could not be listed (" + error.message +
        "): type their names under Other deployments.";
    });
  }

  function deploymentChoice(deployment, index) {
    var item = element("li");
    var box = element("input");
    box.type = "checkbox";
    box.id = "deployment-choice-" + index;
    box.value = String(deployment.name);
    var label = element("label", null, deployment.name);
    label.htmlFor = box.id;
    item.appendChild(box);
    item.appendChild(label);
    var seen = timeElement(deployment.last_seen_at, true);
    if (seen) {
      var note = element("span", "seen", "last seen ");
      note.appendChild(seen);
      item.appendChild(note);
    }
    return item;
  }

  // The deployments chosen: the boxes ticked and the names typed (each checked against the
  // server's rule), once each; or an error message for the person.
  function chosenDeployments() {
    var names = [];
    deploymentChoices.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (box.checked) { names.push(box.value); }
    });
    var typed = otherDeployments.value.split(",")
      .map(function (part) { return part.trim(); })
      .filter(function (part) { return part.length > 0; });
    for (var i = 0; i < typed.length; i++) {
      if (!DEPLOYMENT_NAME.test(typed[i])) {
        return { error: "Deployment name \"" + typed[i] + "\" is not valid: use 1 to 128 " +
          "characters of letters, digits, '.', '_' and '-'." };
      }
      if (names.indexOf(typed[i]) < 0) { names.push(typed[i]); }
    }
    if (!names.length) {
      return { error: "Choose All Deployments or at least one deployment." };
    }
    return { names: names };
  }
  [devops, endpoint, allDeployments].forEach(function (box) {
    box.addEventListener("change", syncAccess);
  });

  function resetCreate() {
    createForm.reset();
    createError.textContent = "";
    byId("created-slot").replaceChildren();
    byId("create-fields").hidden = false;
    byId("create-submit").disabled = false;
    syncAccess();
  }

  byId("create").addEventListener("click", function () {
    if (!state.canWrite) { return; }
    resetCreate();
    loadDeployments();
    createDialog.showModal();
    byId("token-name").focus();
  });
  byId("create-cancel").addEventListener("click", function () { createDialog.close(); });

  // Closing the dialog, however it is closed (Done, Cancel, Escape), takes the secret off the
  // page: it is never shown again. It goes before the dialog closes (Done, and the `cancel`
  // event of Escape), not only on `close`, which the browser fires a moment later.
  var secretShown = false;
  function forgetSecret() {
    if (byId("created-slot").hasChildNodes()) { secretShown = true; }
    resetCreate();
  }
  createDialog.addEventListener("cancel", forgetSecret);
  createDialog.addEventListener("close", function () {
    forgetSecret();
    if (secretShown) { secretShown = false; loadTokens(); }
  });

  // The request body the management API takes, or an error message for the person.
  function createBody() {
    var name = byId("token-name").value.trim();
    if (!name) { return { error: "Give the token a name." }; }
    if (!devops.checked && !endpoint.checked) { return { error: NO_TYPE }; }
    var scopes = [];
    if (devops.checked) {
      byId("scopes").querySelectorAll("input[type=checkbox]").forEach(function (box) {
        if (box.checked) { scopes.push(box.value); }
      });
      if (!scopes.length) { return { error: "Choose at least one Developer Operations scope." }; }
    }
    // Without Protected Endpoint Access the token reaches no deployment: said explicitly,
    // never left to a default.
    var deployments = [];
    if (endpoint.checked) {
      if (allDeployments.checked) {
        deployments = "*";
      } else {
        var chosen = chosenDeployments();
        if (chosen.error) { return { error: chosen.error }; }
        deployments = chosen.names;
      }
    }
    var body = {
      name: name,
      description: byId("token-description").value.trim(),
      scopes: scopes,
      deployments: deployments
    };
    var rateLimit = parseRateLimit(byId("rate-limit").value.trim());
    if (rateLimit.error) { return { error: rateLimit.error }; }
    if (rateLimit.value) { body.rate_limit = rateLimit.value; }
    var quota = parseQuota(byId("quota").value.trim());
    if (quota.error) { return { error: quota.error }; }
    if (quota.value) { body.quota = quota.value; }
    var expiry = byId("expired-at").value;
    if (expiry) {
      var at = new Date(expiry);
      if (isNaN(at.getTime())) { return { error: "Expired At is not a date and time." }; }
      body.expired_at = at.toISOString();
    }
    return { body: body };
  }

  createForm.addEventListener("submit", function (event) {
    // The form is a `method=dialog` form: without this, pressing Submit would close it.
    event.preventDefault();
    createError.textContent = "";
    var built = createBody();
    if (built.error) {
      createError.textContent = built.error;
      return;
    }
    var submit = byId("create-submit");
    submit.disabled = true;
    call("POST", "/tokens", built.body).then(function (created) {
      showSecret(created);
    }, function (error) {
      createError.textContent = error.message;
      submit.disabled = false;
    });
  });

  function copyText(text, input, status) {
    function fallback() {
      // Older browsers, or a page that is not a secure context: copy the selected field.
      input.focus();
      input.select();
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (ignored) { copied = false; }
      status.textContent = copied ? "Copied." : "Select the token and copy it.";
    }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(function () {
        status.textContent = "Copied.";
      }, fallback);
    } else {
      fallback();
    }
  }

  // The secret, once: in a part of the dialog built now and removed when it closes.
  function showSecret(created) {
    byId("create-fields").hidden = true;
    secretSection(byId("created-slot"), created,
      "Token " + created.name + " was created. Copy it now: it is not shown again.",
      function () { forgetSecret(); createDialog.close(); });
  }

  // A new secret (of a create or a reroll) in `slot`: the field, Copy, the login command and
  // Done, which calls `done`.
  function secretSection(slot, created, message, done) {
    var secret = created.token;
    var section = element("div", "created");
    section.appendChild(element("p", "success", message));

    var field = element("div", "field");
    var label = element("label", null, "API token");
    label.htmlFor = "new-token";
    var row = element("div", "copy-row");
    var input = element("input", "secret");
    input.id = "new-token";
    input.readOnly = true;
    input.value = secret;
    input.spellcheck = false;
    input.autocomplete = "off";
    var copy = element("button", "button", "Copy");
    copy.type = "button";
    var status = element("span", "copy-status");
    status.setAttribute("role", "status");
    copy.addEventListener("click", function () { copyText(secret, input, status); });
    row.appendChild(input);
    row.appendChild(copy);
    field.appendChild(label);
    field.appendChild(row);
    field.appendChild(status);
    section.appendChild(field);

    section.appendChild(element("p", "hint", "Log in with the BentoML CLI:"));
    section.appendChild(element("pre", "command",
      "bentoml cloud login --api-token " + secret + " --endpoint " + location.origin));

    var actions = element("div", "actions");
    var doneButton = element("button", "button primary", "Done");
    doneButton.type = "button";
    doneButton.addEventListener("click", done);
    actions.appendChild(doneButton);
    section.appendChild(actions);

    slot.appendChild(section);
    input.focus();
    input.select();
  }

  // ---- disabling, enabling and rerolling a token ----

  function setEnabled(token, enabled) {
    var action = enabled ? "/enable" : "/disable";
    byId("list-error").textContent = "";
    call("POST", "/tokens/" + encodeURIComponent(token.uid) + action, {}).then(function (changed) {
      byId("list-status").textContent = "Token " + changed.name +
        (enabled ? " is enabled: its secret works again." : " is disabled: it is refused until enabled again.");
      loadTokens();
    }, function (error) {
      byId("list-error").textContent = error.message;
    });
  }

  var rerollDialog = byId("reroll-dialog");
  var rerolling = null;

  function resetReroll() {
    byId("rerolled-slot").replaceChildren();
    byId("reroll-fields").hidden = false;
    byId("reroll-error").textContent = "";
    byId("reroll-confirm").disabled = false;
  }

  function askReroll(token) {
    rerolling = token;
    resetReroll();
    byId("reroll-grace").value = "3600";
    byId("reroll-question").textContent = "Give token " + token.name + " a new secret? " +
      "Its uid, scopes and the tokens it created stay; the old secret works for the time " +
      "chosen below, then never again.";
    rerollDialog.showModal();
    byId("reroll-grace").focus();
  }

  // As for a create: the new secret leaves the page before the dialog closes, however it
  // is closed.
  var rerolledShown = false;
  function forgetRerolled() {
    if (byId("rerolled-slot").hasChildNodes()) { rerolledShown = true; }
    resetReroll();
  }
  rerollDialog.addEventListener("cancel", forgetRerolled);
  rerollDialog.addEventListener("close", function () {
    forgetRerolled();
    rerolling = null;
    if (rerolledShown) { rerolledShown = false; loadTokens(); }
  });
  byId("reroll-cancel").addEventListener("click", function () { rerollDialog.close(); });

  byId("reroll-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!rerolling) { return; }
    var confirm = byId("reroll-confirm");
    confirm.disabled = true;
    var grace = Number(byId("reroll-grace").value);
    call("POST", "/tokens/" + encodeURIComponent(rerolling.uid) + "/reroll",
      { grace_period_seconds: grace }).then(function (rerolled) {
      byId("reroll-fields").hidden = true;
      var old = grace === 0 ? "The old secret no longer works." :
        "The old secret works until " + fullFormat.format(new Date(Date.now() + grace * 1000)) + ".";
      secretSection(byId("rerolled-slot"), rerolled,
        "Token " + rerolled.name + " has a new secret. Copy it now: it is not shown again. " + old,
        function () { forgetRerolled(); rerollDialog.close(); });
    }, function (error) {
      byId("reroll-error").textContent = error.message;
      confirm.disabled = false;
    });
  });

  // ---- deleting a token ----

  var deleteDialog = byId("delete-dialog");
  var deleting = null;

  function askDelete(token) {
    deleting = token;
    byId("delete-question").textContent = "Delete token " + token.name +
      "? Requests with it are refused from then on. Every token it created (and the tokens " +
      "those created) is deleted with it.";
    byId("delete-error").textContent = "";
    byId("delete-confirm").disabled = false;
    deleteDialog.showModal();
    byId("delete-cancel").focus();
  }

  byId("delete-cancel").addEventListener("click", function () { deleteDialog.close(); });
  deleteDialog.addEventListener("close", function () { deleting = null; });

  byId("delete-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!deleting) { return; }
    var confirm = byId("delete-confirm");
    confirm.disabled = true;
    call("DELETE", "/tokens/" + encodeURIComponent(deleting.uid)).then(function (deleted) {
      var revoked = deleted && typeof deleted.revoked === "number" ? deleted.revoked : 1;
      byId("list-status").textContent = "Deleted token " + deleted.name + ": " +
        (revoked === 1 ? "1 token revoked." : revoked + " tokens revoked (it and the tokens it created).");
      deleteDialog.close();
      loadTokens();
    }, function (error) {
      byId("delete-error").textContent = error.message;
      confirm.disabled = false;
    });
  });

  // ---- start ----

  syncAccess();
  loadSession().then(loadTokens, function (error) {
    byId("list-error").textContent = error.message;
  });
})();
