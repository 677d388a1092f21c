// The test gate's report beside pylint's verdict: how the gate ended, whose tests judged, each fix round and each
// failing test. Everything here is text from a run of untrusted code, so it is built with h() (text nodes only).
import { h } from "./dom.js";

const WHOSE = { user: "the task's tests", model: "the model's own tests (advisory)" };

function counts(report) {
  const errors = report.errors ? `, ${report.errors} error(s)` : "";
  const stopped = report.timed_out ? " (stopped: wall time)" : report.killed_by ? ` (stopped: ${report.killed_by})` : "";
  return `${report.passed} passed, ${report.failed} failed${errors}${stopped}`;
}

function roundsTable(rounds) {
  const columns = ["Round", "Passed before", "Failed before", "Passed after", "Failed after"];
  return h("table", { class: "small" },
    h("caption", {}, "Test gate rounds"),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rounds.map((r) => h("tr", {},
      [r.round, r.passed_before, r.failed_before, r.passed_after, r.failed_after].map((v) => h("td", {}, String(v)))))));
}

// The block for `results.code_generation` (null when the task ran no tests and has no test gate).
export function testReport(code) {
  const report = code.tests;
  if (!report && !code.test_gate) return null;
  const facts = [
    report?.outcome === "unavailable" ? report.error : report ? `tests ${counts(report)}` : "no tests ran",
    code.tests_by ? WHOSE[code.tests_by] : null,
    `test gate ${code.test_gate ?? "—"}`,
    report?.duration_ms ? `${report.duration_ms} ms` : null,
  ].filter(Boolean);
  return h("div", { class: "test-report", "aria-label": "Test report" },
    h("p", { class: "facts" }, facts.join(" · ")),
    code.test_rounds?.length ? roundsTable(code.test_rounds) : null,
    report?.failures?.length
      ? h("ul", { class: "test-failures" }, report.failures.map((f) =>
        h("li", {}, h("code", { class: "test-id" }, f.test), h("pre", { class: "plain" }, f.message))))
      : null);
}
