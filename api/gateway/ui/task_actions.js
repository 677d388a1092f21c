// What a reader can do to a task, by its status: rate it, raise its budget, cancel it. Each control calls
// `act(path, body, message)`, which posts, says `message`, refreshes the page and follows the task again.

import { approvalForms } from "./approval.js";
import { RATING, STATUS } from "./contract.js";
import { append, h, replace } from "./dom.js";
import { ENDED, number, usd } from "./page.js";

const RATINGS = Array.from({ length: RATING.max - RATING.min + 1 }, (_, i) => RATING.min + i);

/** The controls for the task as it is now (a note when there is nothing to do). */
export function taskActions(view, act) {
  const state = view.state;
  const running = view.workflow_status === "RUNNING";
  const id = encodeURIComponent(view.session_id);
  const parts = [];
  if (state.task_status === STATUS.AWAITING_BUDGET && running) parts.push(budgetForm(state.budget, `/budget/${id}`, act));
  if (state.task_status === STATUS.AWAITING_APPROVAL && running) parts.push(...approvalForms(state, act, view.session_id));
  if (state.task_status === STATUS.AWAITING_FEEDBACK && running) parts.push(ratingForm(`/feedback/${id}`, act));
  if (running && !ENDED.has(state.task_status)) parts.push(cancelControl(`/cancel/${id}`, act));
  if (!parts.length) parts.push(h("p", { class: "muted" }, state.task_status === STATUS.COMPLETED ? "This task is complete." : "This task has ended."));
  return parts;
}

function ratingForm(path, act) {
  const comment = h("textarea", { id: "rating-comment", rows: 3, maxlength: 4000 });
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h(
    "form",
    { class: "card rating", novalidate: true },
    h("fieldset", {},
      h("legend", {}, "Rate the result"),
      h("div", { class: "stars" },
        RATINGS.map((n) => h("label", { class: "star" }, h("input", { type: "radio", name: "rating", value: n, required: true }), ` ${n}`))),
      h("p", { class: "help" }, `${RATING.accepted} or more completes the task; ${RATING.min}–${RATING.accepted - 1} with a comment asks for a revision.`)),
    h("div", { class: "field" }, h("label", { for: "rating-comment" }, "Comment (optional)"), comment),
    error,
    h("button", { type: "submit" }, "Send rating"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = form.querySelector("input[name=rating]:checked");
    if (!chosen) {
      error.textContent = `Choose a rating from ${RATING.min} to ${RATING.max}.`;
      form.querySelector("input[name=rating]").focus();
      return;
    }
    const body = { rating: Number(chosen.value), comment: comment.value.trim() || null };
    form.querySelector("button[type=submit]").disabled = true;
    await act(path, body, `Rating ${body.rating} sent.`);
  });
  return form;
}

function budgetForm(budget, path, act) {
  const usdInput = h("input", { id: "budget-usd", type: "number", min: 0, step: "any", inputmode: "decimal",
    value: budget.budget_usd ? String(Math.max(budget.budget_usd * 2, (budget.spent_usd ?? 0) * 2)) : "" });
  const tokensInput = h("input", { id: "budget-tokens", type: "number", min: 1, step: 1, inputmode: "numeric",
    value: budget.budget_tokens ? String(Math.max(budget.budget_tokens * 2, budget.spent_tokens * 2)) : "" });
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h(
    "form",
    { class: "card budget", novalidate: true },
    h("h2", {}, "The budget is used up"),
    h("p", {}, `Spent ${usd(budget.spent_usd)} and ${number(budget.spent_tokens)} tokens of ` +
      `${budget.budget_usd ? usd(budget.budget_usd) : "no USD limit"} / ${budget.budget_tokens ? `${number(budget.budget_tokens)} tokens` : "no token limit"}. ` +
      "Raise a limit above what is spent and the task goes on."),
    h("div", { class: "field-grid" },
      h("div", { class: "field" }, h("label", { for: "budget-usd" }, "New budget (USD)"), usdInput),
      h("div", { class: "field" }, h("label", { for: "budget-tokens" }, "New budget (tokens)"), tokensInput)),
    error,
    h("button", { type: "submit" }, "Raise budget"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    if (usdInput.value) body.budget_usd = Number(usdInput.value);
    if (tokensInput.value) body.budget_tokens = Number(tokensInput.value);
    if (!Object.keys(body).length) {
      error.textContent = "Give a new USD or token limit.";
      usdInput.focus();
      return;
    }
    await act(path, body, "Budget raised; the task goes on.");
  });
  return form;
}

function cancelControl(path, act) {
  const box = h("div", { class: "cancel" });
  const ask = h("button", { type: "button", class: "danger", id: "cancel-task" }, "Cancel task");
  ask.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger", id: "confirm-cancel" }, "Yes, cancel it");
    const no = h("button", { type: "button", class: "secondary" }, "Keep it running");
    yes.addEventListener("click", () => act(path, undefined, "Cancellation requested."));
    no.addEventListener("click", () => {
      replace(box, ask);
      ask.focus();
    });
    replace(box, h("span", {}, "Cancel this task? Partial results stay readable. "), yes, no);
    yes.focus();
  });
  return append(box, [ask]);
}
