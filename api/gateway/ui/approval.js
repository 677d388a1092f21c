// MCP tools on the task page: the calls waiting for approval (approve or deny each, with a reason, through
// POST /approve/{session_id}) and what each tool was used for (status.tool_usage).

import { h } from "./dom.js";

// One card per call in `state.pending_approvals`; `act(path, body, message)` posts and refreshes the page.
export function approvalForms(state, act, sessionId) {
  return (state.pending_approvals ?? []).map((pending) => {
    const reasonId = `reason-${pending.call_id}`;
    const reason = h("input", { id: reasonId, type: "text", maxlength: 4000, autocomplete: "off" });
    const decide = (approved) => async (event) => {
      event.preventDefault();
      const body = { call_id: pending.call_id, approved };
      if (reason.value.trim()) body.reason = reason.value.trim();
      const verdict = approved ? "approved; it runs now" : "denied; the model is told";
      await act(`/approve/${encodeURIComponent(sessionId)}`, body, `${pending.tool} ${verdict}.`);
    };
    return h("form", { class: "card approval", "aria-label": `Approve ${pending.tool}` },
      h("h2", {}, `${pending.tool} waits for your approval`),
      h("p", { class: "muted" }, `call ${pending.call_id}, asked ${new Date(pending.requested_at).toLocaleString()}`),
      h("pre", { class: "plain" }, JSON.stringify(pending.arguments, null, 2)),
      h("div", { class: "field" }, h("label", { for: reasonId }, "Reason (optional; a denial's reason goes to the model)"), reason),
      h("div", { class: "buttons" },
        h("button", { type: "submit", onclick: decide(true) }, "Approve"),
        h("button", { type: "button", class: "secondary", onclick: decide(false) }, "Deny")));
  });
}

// The MCP tools the task called, with their counts; nothing when it used none.
export function toolsSection(state) {
  const tools = Object.entries(state.tool_usage ?? {});
  if (!tools.length) return null;
  return h("section", { class: "card", "aria-labelledby": "tools-title" }, h("h2", { id: "tools-title" }, "MCP tools"),
    h("div", { class: "table-wrap" }, h("table", { class: "small" },
      h("thead", {}, h("tr", {}, ["Tool", "Calls", "Errors", "Denied"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, tools.map(([name, u]) => h("tr", {},
        h("td", {}, name), h("td", {}, String(u.calls)), h("td", {}, String(u.errors)), h("td", {}, String(u.denied))))))));
}
