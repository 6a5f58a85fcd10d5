// Sign-in: username and password; the session lives in an HttpOnly cookie.

import { api } from "./api.js";
import { go, showFieldErrors, startSession } from "./app.js";
import { field, h, replace } from "./dom.js";

export async function render(main) {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const problems = h("div", { class: "problems", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "sign-in-form", class: "card narrow" },
    h("h1", {}, "Sign in to Aurora"),
    field("Username", username),
    field("Password", password),
    problems,
    h(
      "div",
      { class: "row" },
      h("button", { id: "sign-in", type: "submit" }, "Sign in"),
      h("button", { id: "register", type: "button", class: "secondary", onclick: register }, "Create an account"),
    ),
    h("p", { class: "hint" }, "New here? Choose a username and a password (at least 8 characters) and create an account."),
  );
  async function register() {
    try {
      await api("POST", "/api/v1/auth/register", { username: username.value, password: password.value });
      form.requestSubmit();
    } catch (error) {
      showFieldErrors(form, error, problems);
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await api("POST", "/api/v1/auth/session", {
        username: username.value,
        password: password.value,
      });
      startSession(answer);
      go("/runs");
    } catch (error) {
      showFieldErrors(form, error, problems);
    }
  });
  replace(main, form);
  username.focus();
}
