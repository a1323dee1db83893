/* Card payments through Stripe.js (Elements). The card fields belong to Stripe: the
   number goes from this browser to Stripe, and the hub receives ids only.

   Paying: confirmCardSetup (a SetupIntent: the card, with 3-D Secure if its bank asks)
   -> the hub pays the purchase's PaymentIntent with that card -> if the bank asks again,
   confirmCardPayment (3-D Secure) -> the hub re-reads the payment from Stripe. */
(function () {
  "use strict";
  const payForm = document.getElementById("card-form");
  const setupForm = document.getElementById("setup-form");
  const form = payForm || setupForm;
  if (!form || typeof Stripe === "undefined") return;
  const status = document.getElementById("pay-status");
  const submit = form.querySelector("button[type=submit]");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  // Stripe's own fields get names a screen reader can read.
  document.querySelectorAll("#card-element input").forEach(function (input) {
    const names = {number: "Card number", exp_month: "Expiry month", exp_year: "Expiry year",
                   cvc: "Security code", postal_code: "Postal code"};
    const name = names[input.getAttribute("placeholder")];
    if (name && !input.getAttribute("aria-label")) input.setAttribute("aria-label", name);
  });
  const newCard = document.getElementById("new-card");
  function useSaved() {
    const saved = document.getElementById("use-saved");
    return !!(saved && saved.checked);
  }
  function toggle() { if (newCard) newCard.hidden = useSaved(); }
  document.querySelectorAll("input[name=card_choice]").forEach(function (r) { r.addEventListener("change", toggle); });
  toggle();

  function show(text, error) {
    status.hidden = false;
    status.textContent = text;
    status.className = error ? "notice error" : "notice";
    status.setAttribute("role", error ? "alert" : "status");
  }
  function message(err) { return (err && err.message) || "The card was not accepted."; }
  async function post(url, fields) {
    const body = new FormData();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    const response = await fetch(url, {method: "POST", body: body, credentials: "same-origin",
                                       headers: {"X-CSRFToken": csrf}});
    const data = await response.json().catch(function () { return {error: "The hub did not answer."}; });
    if (!response.ok) throw new Error(data.error || "The payment was refused.");
    return data;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    submit.disabled = true;
    show("Working…", false);
    try {
      const fields = {};
      if (useSaved()) {
        fields.use_saved = "1";
      } else {
        const setup = await stripe.confirmCardSetup(form.dataset.setupSecret, {payment_method: {card: card}});
        if (setup.error) throw new Error(message(setup.error));
        fields.setup_intent = setup.setupIntent.id;
        const save = document.getElementById("save-card");
        if (save && save.checked) fields.save_card = "1";
      }
      const answer = await post(form.action, fields);
      if (setupForm) { window.location.assign(answer.next); return; }
      if (answer.status === "requires_action") {
        show("Your bank asks you to confirm the payment…", false);
        const confirmed = await stripe.confirmCardPayment(answer.client_secret);
        if (confirmed.error) throw new Error(message(confirmed.error));
      }
      document.getElementById("done-form").submit();
    } catch (err) {
      show(err.message || String(err), true);
      submit.disabled = false;
    }
  });
})();
