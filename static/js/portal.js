/* Progressive enhancement for the portal. Every page works without this file.
 *
 * Runs under CSP `script-src 'self'`: no eval, no inline handlers, no HTML from strings.
 *  1. htmx requests carry the CSRF token (besides the inherited hx-headers on <body>).
 *  2. data-confirm="Question?" on a form, a submit button or a link asks before going on.
 *  3. Live search: <input data-results="#results"> lets ArrowDown/ArrowUp walk the links in
 *     #results (Escape returns to the input; Enter follows the focused link, as links do).
 *  4. After a form sent with htmx comes back with errors, focus moves to its error summary
 *     ([data-error-summary]), as `autofocus` does on a full page load.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }

  // 1. Belt and braces: hx-headers on <body> already sends the token through inheritance.
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    var headers = event.detail && event.detail.headers;
    if (token && headers && !headers["X-CSRFToken"]) {
      headers["X-CSRFToken"] = token;
    }
  });

  // 2. Confirmation. Listening in the capture phase on document runs before htmx's own
  // listeners on the element, so a "Cancel" also stops an htmx form from sending.
  function confirmOrCancel(event, message) {
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return false;
    }
    return true;
  }

  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) {
        return;
      }
      var submitter = event.submitter;
      var message =
        (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
      confirmOrCancel(event, message);
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      var target = event.target instanceof Element ? event.target : null;
      var link = target && target.closest("a[data-confirm]");
      if (link) {
        confirmOrCancel(event, link.getAttribute("data-confirm"));
      }
    },
    true
  );

  // 3. Keyboard walk through live-search results.
  function resultsFor(input) {
    var selector = input.getAttribute("data-results");
    if (!selector) {
      return null;
    }
    try {
      return document.querySelector(selector);
    } catch (e) {
      return null; // not a valid selector
    }
  }

  function linksIn(container) {
    return Array.prototype.filter.call(container.querySelectorAll("a[href]"), function (a) {
      return a.offsetParent !== null || a.getClientRects().length > 0; // visible ones only
    });
  }

  // The search input whose results container holds `element`, if any.
  function inputOwning(element) {
    var inputs = document.querySelectorAll("[data-results]");
    for (var i = 0; i < inputs.length; i++) {
      var container = resultsFor(inputs[i]);
      if (container && container.contains(element)) {
        return inputs[i];
      }
    }
    return null;
  }

  function linkResults() {
    var inputs = document.querySelectorAll("[data-results]");
    for (var i = 0; i < inputs.length; i++) {
      var container = resultsFor(inputs[i]);
      if (container && container.id && !inputs[i].hasAttribute("aria-controls")) {
        inputs[i].setAttribute("aria-controls", container.id);
      }
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    var key = event.key;
    if (key !== "ArrowDown" && key !== "ArrowUp" && key !== "Escape") {
      return;
    }
    var target = event.target;
    if (!(target instanceof Element)) {
      return;
    }

    // In the input: ArrowDown enters the list.
    if (target.hasAttribute("data-results")) {
      if (key === "ArrowDown") {
        var container = resultsFor(target);
        var first = container && linksIn(container)[0];
        if (first) {
          event.preventDefault();
          first.focus();
        }
      }
      return;
    }

    // On a result link: move within the list, or back to the input.
    if (target.tagName !== "A") {
      return;
    }
    var input = inputOwning(target);
    if (!input) {
      return;
    }
    var links = linksIn(resultsFor(input));
    var index = links.indexOf(target);
    event.preventDefault();
    if (key === "Escape") {
      input.focus();
    } else if (key === "ArrowDown") {
      (links[index + 1] || links[index]).focus();
    } else if (index <= 0) {
      input.focus();
    } else {
      links[index - 1].focus();
    }
  });

  // 4. Only after a submit: a form re-validated while typing must not steal the focus.
  document.addEventListener("htmx:afterSettle", function (event) {
    var config = event.detail && event.detail.requestConfig;
    var trigger = config && config.triggeringEvent;
    if (!trigger || trigger.type !== "submit") {
      return;
    }
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", linkResults);
  // htmx:load fires for every element htmx adds to the page.
  document.addEventListener("htmx:load", linkResults);
})();
