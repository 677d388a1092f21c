// Calls to the gateway's REST routes with the signed-in key. The key lives in this tab's sessionStorage only:
// it is sent as X-API-KEY, never put in a URL, a cookie or localStorage, and gone when the tab closes.

const KEY_ITEM = "orchestrator.apiKey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  signIn(key) {
    sessionStorage.setItem(KEY_ITEM, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
  },
};

export class ApiError extends Error {
  constructor(status, detail, body, retryAfter) {
    super(detail);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

export function headers(key = session.key, extra = {}) {
  return { "X-API-KEY": key ?? "", ...extra };
}

export async function api(path, { method = "GET", body, signal, key = session.key } = {}) {
  const extra = { Accept: "application/json" };
  if (body !== undefined) extra["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(key, extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "the gateway cannot be reached; check that it runs", null, null);
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (data && typeof data.detail === "string" && data.detail) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail, data, response.headers.get("Retry-After"));
  }
  return data;
}
