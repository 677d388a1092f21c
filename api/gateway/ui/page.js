// What every view of the console shares: the page's regions, formatting, the status badge, notices, the title,
// errors (a refused key signs out), and the current view's clean-up when the route changes.

import { ApiError, session } from "./api.js";
import { ENDED as ENDED_STATUSES, STATUS } from "./contract.js";
import { h, replace } from "./dom.js";

export const main = document.getElementById("main");
const notice = document.getElementById("notice");

// The statuses in the contract's order, each with its label (awaiting_budget: Awaiting budget).
export const STATUSES = Object.values(STATUS).map((value) => [value, value[0].toUpperCase() + value.slice(1).replaceAll("_", " ")]);
export const STATUS_LABEL = Object.fromEntries(STATUSES);
export const ENDED = new Set(ENDED_STATUSES);

let leaveView = () => {}; // stops the current view's timers and streams
let reroute = () => {};

/** The router to run again when the key is refused (console.js sets it). */
export function setRouter(route) {
  reroute = route;
}

/** Leave the current view (its `onLeave` runs once), and say what the next one must stop when it is left. */
export function enterView(onLeave = () => {}) {
  leaveView();
  leaveView = onLeave;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function number(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function usd(value) {
  if (value === null || value === undefined) return "unknown";
  return `$${Number(value).toLocaleString(undefined, { minimumFractionDigits: 4, maximumFractionDigits: 4 })}`;
}

export function badge(status) {
  return h("span", { class: `badge status-${status ?? "unknown"}` }, STATUS_LABEL[status] ?? status ?? "unknown");
}

export function say(message, kind = "info") {
  replace(notice, message ? h("p", { class: `notice-${kind}` }, message) : null);
}

export function heading(text, ...rest) {
  return h("h1", { tabindex: "-1", id: "page-title" }, text, ...rest);
}

export function focusTitle() {
  document.getElementById("page-title")?.focus({ preventScroll: false });
}

export function failed(error) {
  if (error?.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) {
    session.signOut();
    say("The API key was refused; sign in again.", "error");
    reroute();
    return;
  }
  const retry = error instanceof ApiError && error.retryAfter ? ` (retry in ${error.retryAfter} s)` : "";
  say(`${error?.message ?? error}${retry}`, "error");
}
