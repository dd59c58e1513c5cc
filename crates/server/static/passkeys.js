// Passkeys for ringfence's pages: register, sign in, remove. Served by the node itself
// (/static/passkeys.js, no CDN); no inline code, so the page's CSP can forbid inline scripts.
// The JSON API does the work (/api/v1/passkeys/*); the browser's WebAuthn JSON helpers turn
// the server's options into what navigator.credentials wants and the answer back into JSON.
"use strict";
(function () {
  // A page holding two sections that each load this script wires its buttons once.
  if (window.ringfencePasskeys) return;
  async function call(method, path, body, csrf) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const message = json && json.error ? json.error.message : response.statusText;
      throw new Error(message);
    }
    return json;
  }

  async function csrfToken() {
    return (await call("GET", "/api/v1/me")).csrf_token;
  }

  async function register(name) {
    const csrf = await csrfToken();
    const start = await call("POST", "/api/v1/passkeys/register/start", undefined, csrf);
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(start.publicKey);
    const credential = await navigator.credentials.create({ publicKey });
    return call("POST", "/api/v1/passkeys/register/finish", {
      challenge_id: start.challenge_id,
      name,
      credential: credential.toJSON(),
    }, csrf);
  }

  // One ceremony, three uses, chosen by the server from the cookies: with a pending sign-in
  // (after a password) it completes that sign-in; signed in, it re-authenticates this session
  // (the answer is empty); otherwise the passkey alone signs its owner in.
  async function signIn(email) {
    const start = await call("POST", "/api/v1/passkeys/login/start", email ? { email } : {});
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(start.publicKey);
    const credential = await navigator.credentials.get({ publicKey });
    return call("POST", "/api/v1/passkeys/login/finish", {
      challenge_id: start.challenge_id,
      credential: credential.toJSON(),
    });
  }

  async function remove(id) {
    const csrf = await csrfToken();
    return call("DELETE", "/api/v1/passkeys/" + encodeURIComponent(id), undefined, csrf);
  }

  async function list() {
    return (await call("GET", "/api/v1/passkeys")).passkeys;
  }

  // Shows `text` in the .passkey-status of the section holding `from` (the button or form),
  // else in #passkey-status.
  function report(text, from) {
    const section = from && from.closest("section");
    const status = (section && section.querySelector(".passkey-status"))
      || document.getElementById("passkey-status");
    if (status) status.textContent = text;
  }

  // Hooks for the pages: a form#passkey-register with an input[name=name], a
  // button#passkey-login (next to an optional input#passkey-email), a button#passkey-reauth
  // (signed in: confirm it is you), buttons with data-passkey-delete="ID". Results go to
  // #passkey-status.
  function wire() {
    const form = document.getElementById("passkey-register");
    if (form) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        register(form.elements.name.value)
          .then((p) => { report("Passkey \u201c" + p.name + "\u201d added.", form); location.reload(); })
          .catch((e) => report(e.message, form));
      });
    }
    const login = document.getElementById("passkey-login");
    if (login) {
      login.addEventListener("click", (event) => {
        event.preventDefault();
        const email = document.getElementById("passkey-email");
        signIn(email && email.value ? email.value : undefined)
          .then(() => { location.href = "/"; })
          .catch((e) => report(e.message, login));
      });
    }
    const reauth = document.getElementById("passkey-reauth");
    if (reauth) {
      reauth.addEventListener("click", (event) => {
        event.preventDefault();
        signIn()
          .then(() => location.reload())
          .catch((e) => report(e.message, reauth));
      });
    }
    for (const button of document.querySelectorAll("[data-passkey-delete]")) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        remove(button.dataset.passkeyDelete)
          .then(() => location.reload())
          .catch((e) => report(e.message, button));
      });
    }
  }

  window.ringfencePasskeys = { register, signIn, remove, list };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
