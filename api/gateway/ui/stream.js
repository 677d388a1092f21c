// Following a task's progress: GET /events/{id} read as Server-Sent Events over fetch (an EventSource cannot send
// X-API-KEY), resumed after the last event id whenever the connection drops, so every event is seen once; and
// the live model output of `llm_delta` events, where a retried call's text replaces the failed attempt's.
// Nothing here touches the page: tests drive it with a stubbed fetch.

import { EVENT } from "./contract.js";

export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const NUMERIC_ID = /^[0-9]+$/;

// ---------------------------------------------------------------- the wire format

// Returns `feed(text)`, which takes the next chunk of the stream and returns the events it completed, each
// `{event, data, id}`: data is the `data:` lines joined by "\n", id the event's own `id:` field or null (unlike
// EventSource's lastEventId, it does not carry over to later events: the follower keeps its own resume point).
// Lines may end in CRLF, LF or CR, and may be split anywhere between chunks.
export function sseParser() {
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  let sawData = false;
  return function feed(text) {
    buffer += text;
    const events = [];
    for (;;) {
      const end = buffer.search(/[\r\n]/);
      if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break; // a CR may be half a CRLF
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1));
      if (line === "") {
        if (sawData) events.push({ event: type || "message", data: data.join("\n"), id });
        type = "";
        data = [];
        id = null;
        sawData = false;
        continue;
      }
      if (line.startsWith(":")) continue; // a comment (the gateway's keep-alive pings)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") {
        data.push(value);
        sawData = true;
      } else if (field === "id" && !value.includes("\0")) id = value;
    }
    return events;
  };
}

// ---------------------------------------------------------------- following with resume

export class StreamRefused extends Error {
  // The gateway answered the stream request with a status that retrying cannot change (401, 404, 409, 422).
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

const sleepFor = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

// Follow `/events/{sessionId}` from event `after` until the stream's `end` event; returns
// `{kind: "end", state, lastId}` or, once `signal` aborts, `{kind: "aborted", lastId}`.
//   onEvent(event): each progress event once, in order: {type, id (number|null), payload (parsed JSON)}; the
//     gateway's own `gap` too. Events without a numeric id pass through as they come.
//   onConnection({state, delayMs, reason}): "connecting", "live", "waiting" (before a retry), "ended".
// A dropped connection, a stream that stops without `end`, an `error` event, a 5xx or a 429 are retried
// (after the backoff, or the Retry-After the gateway sent); `timeout` (the gateway's stream time limit) at once.
export async function followTask({
  sessionId,
  key,
  after = 0,
  onEvent = () => {},
  onConnection = () => {},
  signal,
  fetchFn = (...args) => fetch(...args),
  sleep = sleepFor,
  backoffMs = BACKOFF_MS,
}) {
  let lastId = after;
  let failures = 0;
  const retry = async (reason, delayMs) => {
    const wait = delayMs ?? backoffMs[Math.min(failures, backoffMs.length - 1)];
    failures += 1;
    onConnection({ state: "waiting", delayMs: wait, reason });
    await sleep(wait, signal);
  };
  while (!signal?.aborted) {
    onConnection({ state: "connecting" });
    let response;
    try {
      response = await fetchFn(`/events/${encodeURIComponent(sessionId)}?after=${lastId}`, {
        headers: { "X-API-KEY": key ?? "", Accept: "text/event-stream", "Last-Event-ID": String(lastId) },
        signal,
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      if (signal?.aborted) break;
      await retry("the gateway cannot be reached");
      continue;
    }
    if ([401, 404, 409, 422].includes(response.status)) {
      const body = await response.json().catch(() => null);
      throw new StreamRefused(response.status, body?.detail ?? `${response.status} ${response.statusText}`);
    }
    if (!response.ok || !response.body) {
      const seconds = Number(response.headers.get("Retry-After"));
      await retry(`the gateway answered ${response.status}`, seconds > 0 ? seconds * 1000 : undefined);
      continue;
    }
    onConnection({ state: "live" });
    const outcome = await readStream(response.body, lastId, onEvent, signal);
    if (outcome.lastId > lastId) failures = 0; // it made progress: the next drop starts the backoff again
    lastId = outcome.lastId;
    if (outcome.kind === "end") {
      onConnection({ state: "ended" });
      return { kind: "end", state: outcome.state, lastId };
    }
    if (signal?.aborted) break;
    if (outcome.kind === "timeout") continue;
    await retry(outcome.reason);
  }
  return { kind: "aborted", lastId };
}

async function readStream(body, lastId, onEvent, signal) {
  const feed = sseParser();
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort);
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        return { kind: "dropped", lastId, reason: "the connection dropped" };
      }
      if (chunk.done) return { kind: "dropped", lastId, reason: "the stream stopped before the task did" };
      for (const message of feed(chunk.value)) {
        let payload = null;
        try {
          payload = JSON.parse(message.data);
        } catch {
          payload = message.data;
        }
        if (message.event === EVENT.END) return { kind: "end", state: payload, lastId };
        if (message.event === EVENT.TIMEOUT) return { kind: "timeout", lastId };
        if (message.event === EVENT.ERROR) {
          return { kind: "dropped", lastId, reason: payload?.detail ?? "the gateway could not read the events" };
        }
        if (message.event === EVENT.SESSION) continue;
        // An event on the task's stream carries its id there, so a reconnect resumes after the last one seen; a
        // model-output delta the live channel (NATS_URL) carried has none and is shown as it comes.
        const numeric = message.id !== null && NUMERIC_ID.test(message.id);
        const id = numeric ? Number(message.id) : null;
        if (id !== null) {
          if (id <= lastId) continue; // already seen before the reconnect
          lastId = id;
        }
        onEvent({ type: message.event, id, payload });
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

// ---------------------------------------------------------------- live model output

// The text of model calls as it streams (`llm_delta`: data {role, step, attempt, text}), one block per call.
// A delta of a higher attempt means the earlier attempt failed and is being retried: its partial text is
// dropped. A delta of a lower attempt than the block's is stale and ignored. The call's `llm_call` event (the
// answer arrived) closes the block; a later delta for the same role and step (a new agent run, e.g. a revision)
// opens a new one. A task whose worker sends no deltas (LLM_DELTA_INTERVAL_MS=0) simply has no block.
export class LiveOutput {
  constructor(maxBlocks = 6) {
    this.maxBlocks = maxBlocks;
    this.blocks = []; // {role, step, attempt, text, done, gap}, oldest first
  }

  // Takes any progress event; returns true when the live output changed.
  apply(event) {
    const data = deltaData(event);
    if (event.type === EVENT.LLM_DELTA && data) return this.#delta(data);
    if (event.type === EVENT.LLM_CALL) {
      const role = event.payload?.agent ?? event.payload?.data?.role;
      const block = this.#open(role, event.payload?.data?.step);
      if (block) block.done = true;
      return Boolean(block);
    }
    return false;
  }

  // After a reconnect, a delta the gateway no longer holds (past its retention, or a gap) is not sent again: an
  // unfinished block keeps its text and is marked as having a gap, so the page can say some text may be
  // missing. The call's answer itself arrives complete with the task's results.
  resumed() {
    let changed = false;
    for (const block of this.blocks) {
      if (!block.done && !block.gap) {
        block.gap = true;
        changed = true;
      }
    }
    return changed;
  }

  #open(role, step) {
    return this.blocks.findLast((b) => b.role === role && b.step === step && !b.done);
  }

  #delta({ role, step, attempt, text }) {
    let block = this.#open(role, step);
    if (block && attempt < block.attempt) return false;
    if (!block) {
      block = { role, step, attempt, text: "", done: false, gap: false };
      this.blocks.push(block);
      if (this.blocks.length > this.maxBlocks) this.blocks.shift();
    } else if (attempt > block.attempt) {
      block.attempt = attempt;
      block.text = "";
      block.gap = false;
    }
    block.text += text;
    return true;
  }
}

function deltaData(event) {
  const payload = event.payload;
  const data = payload && typeof payload === "object" && payload.data && typeof payload.data === "object"
    ? payload.data
    : payload;
  if (!data || typeof data.text !== "string") return null;
  return {
    role: String(data.role ?? payload.agent ?? ""),
    step: Number(data.step ?? 0),
    attempt: Number(data.attempt ?? 1),
    text: data.text,
  };
}
