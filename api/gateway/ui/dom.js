// The page's only ways to make DOM. `h()` builds elements whose text is always text (a string child becomes a
// text node, never markup); `setSanitizedHtml()` puts in a fragment the gateway rendered and sanitised (the
// *_html fields of GET /tasks/{id}/view), through the one Trusted Types policy the page's CSP allows: any other
// assignment of markup (innerHTML, insertAdjacentHTML, document.write) throws.

const policy = window.trustedTypes
  ? window.trustedTypes.createPolicy("console", { createHTML: (sanitisedByTheGateway) => sanitisedByTheGateway })
  : { createHTML: (html) => html };

const SAFE_URL = /^(#|\/(?!\/)|https?:\/\/)/; // in-page routes, this origin's paths, web links: never javascript:

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else {
      if ((name === "href" || name === "src" || name === "action") && !SAFE_URL.test(String(value))) {
        throw new Error(`refusing a ${name} that is not a web or in-page link`);
      }
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

export function setSanitizedHtml(element, html) {
  element.innerHTML = policy.createHTML(html ?? "");
  return element;
}
