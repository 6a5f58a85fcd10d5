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
    h("button", { id: "sign-in", type: "submit" }, "Sign in"),
  );
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
