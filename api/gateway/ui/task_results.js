// The task page's results: plan, code (with its pylint messages and gate rounds), documentation, usage and cost,
// feedback, problems. The plan, code and docs are the gateway's sanitised HTML; everything else goes in as text.

import { RATING } from "./contract.js";
import { append, h, setSanitizedHtml } from "./dom.js";
import { number, usd, when } from "./page.js";
import { testReport } from "./tests.js";
import { toolsSection } from "./approval.js";

/** The sections, in page order (a section with nothing to show is null); `mcpCalls` from the task's events. */
export function resultSections(state, rendered, mcpCalls = []) {
  return [planSection(state, rendered), codeSection(state, rendered), docsSection(rendered), usageSection(state),
    toolsSection(state, mcpCalls), feedbackSection(state), problemsSection(state)];
}

function planSection(state, rendered) {
  return h("section", { class: "card", "aria-labelledby": "plan-title" }, h("h2", { id: "plan-title" }, "Plan"),
    rendered.plan_html ? setSanitizedHtml(h("div", { class: "rendered plan" }), rendered.plan_html) : h("p", { class: "muted" }, "No plan yet."));
}

function codeSection(state, rendered) {
  const code = state.results.code_generation;
  const section = h("section", { class: "card", "aria-labelledby": "code-title" }, h("h2", { id: "code-title" }, "Code"));
  if (!code) return append(section, [h("p", { class: "muted" }, "No code yet.")]);
  const lint = code.lint;
  const facts = [
    `model ${code.model}`,
    lint?.error ? `pylint could not run: ${lint.error}` : `pylint ${lint?.score ?? "—"}/10, ${lint?.messages.length ?? 0} message(s)`,
    code.lint_gate ? `quality gate ${code.lint_gate}` : null,
    code.revision ? `revision ${code.revision}` : null,
  ].filter(Boolean);
  append(section, [h("p", { class: "facts" }, facts.join(" · "))]);
  if (code.lint_rounds?.length) {
    append(section, [h("table", { class: "small" },
      h("caption", {}, "Quality gate rounds"),
      h("thead", {}, h("tr", {}, ["Round", "Score before", "Score after", "Errors before", "Errors after"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, code.lint_rounds.map((r) => h("tr", {}, [r.round, r.score_before ?? "—", r.score_after ?? "—", r.errors_before, r.errors_after].map((v) => h("td", {}, String(v)))))))]);
  }
  append(section, [testReport(code)]);
  append(section, [setSanitizedHtml(h("div", { class: "rendered code-view", tabindex: "0", "aria-label": "Code with pylint messages" }), rendered.code_html)]);
  if (code.explanation) append(section, [h("details", {}, h("summary", {}, "The model's explanation"), h("pre", { class: "plain" }, code.explanation))]);
  return section;
}

function docsSection(rendered) {
  return h("section", { class: "card", "aria-labelledby": "docs-title" }, h("h2", { id: "docs-title" }, "Documentation"),
    rendered.docs_html ? setSanitizedHtml(h("div", { class: "rendered docs" }), rendered.docs_html) : h("p", { class: "muted" }, "No documentation yet."));
}

function usageSection(state) {
  const models = Object.entries(state.usage ?? {});
  const budget = state.budget;
  const limit = (value, fmt) => (value === null || value === undefined ? "none" : fmt(value));
  return h("section", { class: "card", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Usage and cost"),
    h("dl", { class: "totals" },
      h("dt", {}, "Cost"), h("dd", { class: "cost" }, usd(state.cost_usd)),
      h("dt", {}, "Budget (USD)"), h("dd", {}, `${usd(budget.spent_usd)} spent of ${limit(budget.budget_usd, usd)}`),
      h("dt", {}, "Budget (tokens)"), h("dd", {}, `${number(budget.spent_tokens)} spent of ${limit(budget.budget_tokens, number)}`)),
    models.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "small" },
          h("thead", {}, h("tr", {}, ["Model", "Calls", "Input tokens", "Cached", "Output tokens", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, models.map(([model, u]) => h("tr", {},
            h("td", {}, model), h("td", {}, number(u.calls)), h("td", {}, number(u.input_tokens)),
            h("td", {}, number(u.cached_input_tokens)), h("td", {}, number(u.output_tokens)), h("td", {}, usd(u.cost_usd)))))))
      : h("p", { class: "muted" }, "No model call yet."));
}

function feedbackSection(state) {
  if (!state.feedback?.length) return null;
  return h("section", { class: "card", "aria-labelledby": "feedback-title" }, h("h2", { id: "feedback-title" }, "Feedback"),
    h("ul", {}, state.feedback.map((f) => h("li", {}, `${f.rating}/${RATING.max} at ${when(f.received_at)}`, f.comment ? h("q", {}, f.comment) : null))));
}

function problemsSection(state) {
  if (!state.errors?.length && !state.warnings?.length) return null;
  return h("section", { class: "card problems", "aria-labelledby": "problems-title" }, h("h2", { id: "problems-title" }, "Errors and warnings"),
    h("ul", {}, state.errors.map((e) => h("li", { class: "error" }, e)), state.warnings.map((w) => h("li", { class: "warning" }, w))));
}
