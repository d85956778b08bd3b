/*
 * <onetomany-inbox>: the in-app inbox as a web component, with no dependencies.
 *
 *   <script type="module" src="/onetomany/widget.js"></script>
 *   <onetomany-inbox api="/onetomany" token="..."></onetomany-inbox>
 *
 * Attributes: api (where the app is mounted), token (the per-contact token the host's
 * backend issued), token-url (optional: GET it for a fresh {"token": ...} when the token
 * expires), locale (default: the contact's, then the browser's), poll (seconds between
 * count checks, 30 by default, 0 for none), open (show the panel).
 * Theming: the CSS custom properties below (--onetomany-*) and ::part() names
 * (bell, badge, panel, header, title, mark-all, tabs, tab, list, item, item-title, time,
 * body, actions, link, archive, snooze, status, retry, more, preferences-toggle, preferences,
 * preferences-status).
 * Message text is set with textContent: a message can never inject markup. Only a touch that
 * chose markdown or HTML bodies has its server-sanitised body_html inserted (bodyContent).
 * Events: "onetomany-counts" (detail: {unread, unseen}) whenever the counts change.
 */

const STRINGS = {
  en: {
    notifications: "Notifications",
    bell: (n) => (n ? `Notifications, ${n} unread` : "Notifications"),
    tabs: { inbox: "Inbox", unread: "Unread", archived: "Archived" },
    markAll: "Mark all read",
    open: "Open",
    archive: "Archive",
    unarchive: "Move to inbox",
    snooze: "Snooze until tomorrow",
    snoozed: "Snoozed until tomorrow",
    unread: "Unread",
    empty: { inbox: "You're all caught up.", unread: "Nothing unread.", archived: "Nothing archived." },
    error: "The notifications could not be loaded.",
    expired: "Your session has expired. Reload the page.",
    retry: "Try again",
    more: "Show older",
    loading: "Loading…",
    preferences: "Preferences",
    back: "Back",
    topics: "Topics",
    channels: "Channels",
    alwaysSent: "always sent",
    saved: "Your preferences are saved.",
    notSaved: "Your preferences could not be saved.",
    kinds: { email: "Email", sms: "Text messages", inapp: "In-app", whatsapp: "WhatsApp", chat: "Chat", webhook: "Webhook" },
  },
  pt: {
    notifications: "Notificações",
    bell: (n) => (n ? `Notificações, ${n} não lidas` : "Notificações"),
    tabs: { inbox: "Caixa de entrada", unread: "Não lidas", archived: "Arquivadas" },
    markAll: "Marcar todas como lidas",
    open: "Abrir",
    archive: "Arquivar",
    unarchive: "Mover para a caixa de entrada",
    snooze: "Adiar até amanhã",
    snoozed: "Adiada até amanhã",
    unread: "Não lida",
    empty: { inbox: "Tudo em dia.", unread: "Nada por ler.", archived: "Nada arquivado." },
    error: "Não foi possível carregar as notificações.",
    expired: "Sua sessão expirou. Recarregue a página.",
    retry: "Tentar de novo",
    more: "Ver anteriores",
    loading: "Carregando…",
    preferences: "Preferências",
    back: "Voltar",
    topics: "Assuntos",
    channels: "Canais",
    alwaysSent: "sempre enviado",
    saved: "Suas preferências foram salvas.",
    notSaved: "Não foi possível salvar suas preferências.",
    kinds: { email: "Email", sms: "Mensagens de texto", inapp: "No aplicativo", whatsapp: "WhatsApp", chat: "Chat", webhook: "Webhook" },
  },
  id: {
    notifications: "Notifikasi",
    bell: (n) => (n ? `Notifikasi, ${n} belum dibaca` : "Notifikasi"),
    tabs: { inbox: "Kotak masuk", unread: "Belum dibaca", archived: "Arsip" },
    markAll: "Tandai semua sudah dibaca",
    open: "Buka",
    archive: "Arsipkan",
    unarchive: "Pindahkan ke kotak masuk",
    snooze: "Tunda sampai besok",
    snoozed: "Ditunda sampai besok",
    unread: "Belum dibaca",
    empty: { inbox: "Semua sudah dibaca.", unread: "Tidak ada yang belum dibaca.", archived: "Arsip kosong." },
    error: "Notifikasi tidak dapat dimuat.",
    expired: "Sesi Anda telah berakhir. Muat ulang halaman.",
    retry: "Coba lagi",
    more: "Lihat yang lebih lama",
    loading: "Memuat…",
    preferences: "Preferensi",
    back: "Kembali",
    topics: "Topik",
    channels: "Saluran",
    alwaysSent: "selalu dikirim",
    saved: "Preferensi Anda tersimpan.",
    notSaved: "Preferensi Anda tidak dapat disimpan.",
    kinds: { email: "Email", sms: "Pesan teks", inapp: "Dalam aplikasi", whatsapp: "WhatsApp", chat: "Chat", webhook: "Webhook" },
  },
};

const TABS = ["inbox", "unread", "archived"];

const STYLE = `
:host {
  --_accent: var(--onetomany-accent, #2563eb);
  --_bg: var(--onetomany-bg, #ffffff);
  --_fg: var(--onetomany-fg, #111827);
  --_muted: var(--onetomany-muted, #6b7280);
  --_border: var(--onetomany-border, #e5e7eb);
  --_badge: var(--onetomany-badge-bg, #dc2626);
  --_radius: var(--onetomany-radius, 10px);
  --_width: var(--onetomany-width, 360px);
  display: inline-block; position: relative;
  font: var(--onetomany-font, 14px/1.4 system-ui, sans-serif); color: var(--_fg);
}
button { font: inherit; color: inherit; cursor: pointer; }
:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.bell { position: relative; background: none; border: 0; padding: 6px; border-radius: 50%; }
.bell svg { width: 24px; height: 24px; display: block; }
.badge { position: absolute; top: 0; right: 0; min-width: 18px; height: 18px; padding: 0 5px;
  box-sizing: border-box; border-radius: 9px; background: var(--_badge); color: #fff;
  font-size: 11px; font-weight: 600; line-height: 18px; text-align: center; }
.badge[hidden], [hidden] { display: none !important; }
.panel { position: absolute; right: 0; top: calc(100% + 6px); width: var(--_width);
  max-height: 480px; display: flex; flex-direction: column; background: var(--_bg);
  border: 1px solid var(--_border); border-radius: var(--_radius);
  box-shadow: 0 10px 30px rgba(0,0,0,.15); overflow: hidden; z-index: 1000; }
.header { display: flex; align-items: center; justify-content: space-between;
  padding: 10px 12px; border-bottom: 1px solid var(--_border); }
.header h2 { margin: 0; font-size: 15px; }
.link-button { background: none; border: 0; color: var(--_accent); padding: 2px 4px; }
.tabs { display: flex; gap: 4px; padding: 6px 8px 0; border-bottom: 1px solid var(--_border); }
.tab { background: none; border: 0; border-bottom: 2px solid transparent; padding: 6px 8px; color: var(--_muted); }
.tab[aria-selected="true"] { color: var(--_fg); border-bottom-color: var(--_accent); }
.list { list-style: none; margin: 0; padding: 0; overflow-y: auto; flex: 1; }
.item { border-bottom: 1px solid var(--_border); }
.open { display: grid; grid-template-columns: 10px 1fr auto; gap: 8px; align-items: baseline;
  width: 100%; text-align: left; background: none; border: 0; padding: 10px 12px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: transparent; }
.item.unread .dot { background: var(--_accent); }
.item.unread .item-title { font-weight: 600; }
.time { color: var(--_muted); font-size: 12px; white-space: nowrap; }
.body { padding: 0 12px 10px 30px; white-space: pre-line; color: var(--_fg); }
.body.rich { white-space: normal; }
.body.rich img { max-width: 100%; }
.actions { display: flex; gap: 8px; margin-top: 8px; flex-wrap: wrap; }
.actions a, .actions button { font-size: 13px; border: 1px solid var(--_border); background: var(--_bg);
  color: var(--_fg); border-radius: 6px; padding: 3px 8px; text-decoration: none; }
.actions a { border-color: var(--_accent); color: var(--_accent); }
.status { padding: 24px 12px; text-align: center; color: var(--_muted); }
.status.error { color: var(--_badge); }
.more { margin: 8px auto; display: block; }
.header-actions { display: flex; gap: 4px; }
.prefs { overflow-y: auto; padding: 4px 12px 12px; }
.prefs fieldset { border: 0; margin: 8px 0 0; padding: 0; }
.prefs legend { font-weight: 600; padding: 0; margin-bottom: 4px; }
.prefs label { display: flex; gap: 8px; align-items: center; padding: 4px 0; }
.prefs input { accent-color: var(--_accent); width: 16px; height: 16px; margin: 0; }
.prefs .note { color: var(--_muted); font-size: 12px; }
.prefs-status { color: var(--_muted); min-height: 1.4em; margin: 8px 0 0; }
.prefs-status.error { color: var(--_badge); }
`;

const BELL_ICON =
  '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">' +
  '<path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.7 21a2 2 0 0 1-3.4 0"/></svg>';

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * An item's body as nodes: its text, or, when its touch chose markdown or HTML, the server's
 * sanitised `body_html` (onetomany.web.bodies: no script, handler, style or javascript: URL
 * survives it), parsed in an inert <template> so nothing in it runs while it is built.
 */
function bodyContent(item) {
  if (item.body_format !== "markdown" && item.body_format !== "html") {
    return document.createTextNode(item.body);
  }
  const holder = document.createElement("template");
  holder.innerHTML = item.body_html;
  for (const link of holder.content.querySelectorAll("a[href]")) {
    link.setAttribute("target", "_blank");
  }
  return holder.content;
}

function webUrl(url) {
  // The API hands out http(s) and relative links only; check again before following one.
  if (!url) return null;
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (error) {
    return null;
  }
}

class AuthError extends Error {}

let instances = 0;

export class OnetomanyInbox extends HTMLElement {
  static get observedAttributes() {
    return ["token", "locale", "poll", "open", "api"];
  }

  constructor() {
    super();
    this.uid = `otm-${++instances}`;
    this.tab = "inbox";
    this.items = [];
    this.next = null;
    this.counts = { unread: 0, unseen: 0 };
    this.contactLocale = null;
    this.expanded = new Set();
    this.prefsOpen = false;
    this.timer = null;
    this.root = this.attachShadow({ mode: "open" });
    this.build();
  }

  connectedCallback() {
    this.render();
    this.refreshCounts();
    this.startPolling();
    if (this.hasAttribute("open")) this.openPanel(false);
    this.visibility = () => (document.hidden ? this.stopPolling() : this.startPolling());
    document.addEventListener("visibilitychange", this.visibility);
  }

  disconnectedCallback() {
    this.stopPolling();
    document.removeEventListener("visibilitychange", this.visibility);
  }

  attributeChangedCallback(name, previous, value) {
    if (!this.isConnected || previous === value) return;
    if (name === "poll") this.startPolling();
    else if (name === "locale") this.render();
    else if (name === "open") value === null ? this.closePanel(false) : this.openPanel(false);
    else this.reload();
  }

  get strings() {
    const wanted = [this.getAttribute("locale"), this.contactLocale, navigator.language];
    for (const locale of wanted) {
      if (!locale) continue;
      const language = locale.toLowerCase().split(/[-_]/)[0];
      if (STRINGS[language]) return STRINGS[language];
    }
    return STRINGS.en;
  }

  get locale() {
    return this.getAttribute("locale") || this.contactLocale || navigator.language || "en";
  }

  // -- talking to the API --------------------------------------------------------------

  async call(path, { method = "GET", body, retried = false } = {}) {
    const base = (this.getAttribute("api") || "").replace(/\/$/, "");
    const headers = { Authorization: `Bearer ${this.getAttribute("token") || ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
    if (response.status === 401) {
      if (!retried && (await this.renewToken())) return this.call(path, { method, body, retried: true });
      throw new AuthError("unauthorized");
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  async renewToken() {
    const url = this.getAttribute("token-url");
    if (!url) return false;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return false;
      const { token } = await response.json();
      if (!token) return false;
      this.setAttribute("token", token);
      return true;
    } catch (error) {
      return false;
    }
  }

  setCounts(counts) {
    if (!counts) return;
    const changed = counts.unread !== this.counts.unread || counts.unseen !== this.counts.unseen;
    this.counts = counts;
    this.renderBell();
    if (changed) this.dispatchEvent(new CustomEvent("onetomany-counts", { detail: { ...counts } }));
    return changed;
  }

  async refreshCounts() {
    try {
      const changed = this.setCounts(await this.call("/inbox/counts"));
      if (changed && !this.panel.hidden) this.reload();
    } catch (error) {
      if (error instanceof AuthError) this.showError(this.strings.expired, false);
    }
  }

  startPolling() {
    this.stopPolling();
    const seconds = Number(this.getAttribute("poll") ?? 30);
    if (seconds > 0 && !document.hidden) {
      this.timer = setInterval(() => this.refreshCounts(), seconds * 1000);
    }
  }

  stopPolling() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async reload(append = false) {
    if (!append) this.showStatus(this.strings.loading);
    const query = new URLSearchParams({ tab: this.tab, limit: "20" });
    if (append && this.next) query.set("after", this.next);
    // Only the latest request may draw: a tab switched twice quickly answers out of order.
    const ticket = (this.ticket = (this.ticket || 0) + 1);
    try {
      const page = await this.call(`/inbox?${query}`);
      if (ticket !== this.ticket) return;
      this.contactLocale = page.contact && page.contact.locale;
      this.items = append ? this.items.concat(page.items) : page.items;
      this.next = page.next;
      this.setCounts(page.counts);
      this.render();
      if (this.counts.unseen > 0 && !this.panel.hidden) {
        this.setCounts((await this.call("/inbox/seen", { method: "POST", body: {} })).counts);
      }
    } catch (error) {
      if (ticket !== this.ticket) return;
      const auth = error instanceof AuthError;
      this.showError(auth ? this.strings.expired : this.strings.error, !auth);
    }
  }

  async act(item, action, body = {}) {
    try {
      const answer = await this.call(`/inbox/${item.id}/${action}`, { method: "POST", body });
      this.setCounts(answer.counts);
      return answer;
    } catch (error) {
      this.showError(error instanceof AuthError ? this.strings.expired : this.strings.error, true);
      return null;
    }
  }

  // -- the panel ----------------------------------------------------------------------

  build() {
    const style = element("style");
    style.textContent = STYLE;
    this.bell = element("button", {
      part: "bell",
      class: "bell",
      type: "button",
      "aria-haspopup": "dialog",
      "aria-expanded": "false",
      "aria-controls": `${this.uid}-panel`,
    });
    this.bell.innerHTML = BELL_ICON; // a constant; message HTML goes only through bodyContent
    this.badge = element("span", { part: "badge", class: "badge", "aria-hidden": "true" });
    this.bell.append(this.badge);
    this.bell.addEventListener("click", () => (this.panel.hidden ? this.openPanel(true) : this.closePanel(true)));

    this.panel = element("div", {
      part: "panel",
      class: "panel",
      role: "dialog",
      id: `${this.uid}-panel`,
      "aria-labelledby": `${this.uid}-title`,
    });
    this.panel.hidden = true;
    const header = element("div", { part: "header", class: "header" });
    this.heading = element("h2", { part: "title", id: `${this.uid}-title` });
    this.markAll = element("button", { part: "mark-all", class: "link-button", type: "button" });
    this.markAll.addEventListener("click", () => this.markAllRead());
    this.prefsToggle = element("button", {
      part: "preferences-toggle",
      class: "link-button",
      type: "button",
      "aria-expanded": "false",
      "aria-controls": `${this.uid}-prefs`,
    });
    this.prefsToggle.addEventListener("click", () => this.togglePreferences());
    const headerActions = element("div", { class: "header-actions" });
    headerActions.append(this.markAll, this.prefsToggle);
    header.append(this.heading, headerActions);

    this.tablist = element("div", { part: "tabs", class: "tabs", role: "tablist" });
    this.tabButtons = TABS.map((tab) => {
      const button = element("button", {
        part: "tab",
        class: "tab",
        role: "tab",
        type: "button",
        id: `${this.uid}-tab-${tab}`,
        "aria-controls": `${this.uid}-list`,
        "data-tab": tab,
      });
      button.addEventListener("click", () => this.selectTab(tab));
      return button;
    });
    this.tablist.append(...this.tabButtons);
    this.tablist.addEventListener("keydown", (event) => this.tabKeys(event));

    this.status = element("div", { part: "status", class: "status", role: "status", "aria-live": "polite" });
    this.retry = element("button", { part: "retry", class: "link-button", type: "button" });
    this.retry.addEventListener("click", () => this.reload());
    this.list = element("ul", {
      part: "list",
      class: "list",
      role: "tabpanel",
      id: `${this.uid}-list`,
    });
    this.more = element("button", { part: "more", class: "link-button more", type: "button" });
    this.more.addEventListener("click", () => this.reload(true));
    // The preferences view: native checkboxes in labelled fieldsets (keyboard and screen
    // readers for free); each change is saved at once and announced in a live region.
    this.prefs = element("form", { part: "preferences", class: "prefs", id: `${this.uid}-prefs` });
    this.prefs.hidden = true;
    this.prefs.addEventListener("submit", (event) => event.preventDefault());
    this.prefs.addEventListener("change", (event) => this.savePreference(event.target));
    this.prefsStatus = element("p", {
      part: "preferences-status",
      class: "prefs-status",
      role: "status",
      "aria-live": "polite",
    });
    this.panel.append(header, this.tablist, this.status, this.list, this.more, this.prefs);
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closePanel(true);
    });
    this.root.append(style, this.bell, this.panel);
  }

  openPanel(focus) {
    if (!this.panel.hidden) return;
    this.panel.hidden = false;
    this.bell.setAttribute("aria-expanded", "true");
    this.reload();
    if (focus) this.tabButtons[TABS.indexOf(this.tab)].focus();
  }

  closePanel(focus) {
    this.panel.hidden = true;
    this.bell.setAttribute("aria-expanded", "false");
    if (focus) this.bell.focus();
  }

  selectTab(tab) {
    this.tab = tab;
    this.expanded.clear();
    this.items = [];
    this.next = null;
    this.render();
    this.reload();
  }

  tabKeys(event) {
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -TABS.length, End: TABS.length };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const index = Math.max(0, Math.min(TABS.length - 1, TABS.indexOf(this.tab) + moves[event.key]));
    this.selectTab(TABS[index]);
    this.tabButtons[index].focus();
  }

  async markAllRead() {
    try {
      const answer = await this.call("/inbox/read", { method: "POST", body: { all: true } });
      this.setCounts(answer.counts);
      this.reload();
    } catch (error) {
      this.showError(this.strings.error, true);
    }
  }

  showStatus(text) {
    this.status.className = "status";
    this.status.textContent = text;
    this.status.hidden = false;
  }

  showError(text, canRetry) {
    this.showStatus(text);
    this.status.classList.add("error");
    this.status.setAttribute("role", "alert");
    if (canRetry) {
      this.retry.textContent = this.strings.retry;
      this.status.append(element("br"), this.retry);
    }
  }

  renderBell() {
    const unread = this.counts.unread;
    this.badge.textContent = unread > 99 ? "99+" : String(unread);
    this.badge.hidden = unread === 0;
    this.bell.setAttribute("aria-label", this.strings.bell(unread));
  }

  render() {
    const s = this.strings;
    this.renderBell();
    this.heading.textContent = this.prefsOpen ? s.preferences : s.notifications;
    this.markAll.textContent = s.markAll;
    this.markAll.hidden = this.counts.unread === 0 || this.prefsOpen;
    this.tabButtons.forEach((button, index) => {
      const selected = TABS[index] === this.tab;
      button.textContent = s.tabs[TABS[index]];
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
    });
    this.list.setAttribute("aria-labelledby", `${this.uid}-tab-${this.tab}`);
    this.list.replaceChildren(...this.items.map((item) => this.renderItem(item)));
    this.more.textContent = s.more;
    this.more.hidden = !this.next || this.prefsOpen;
    this.prefsToggle.textContent = this.prefsOpen ? s.back : s.preferences;
    this.status.setAttribute("role", "status");
    if (this.items.length === 0 && !this.prefsOpen) this.showStatus(s.empty[this.tab]);
    else this.status.hidden = true;
  }

  // -- the preferences view -------------------------------------------------------------

  async togglePreferences() {
    this.prefsOpen = !this.prefsOpen;
    this.prefsToggle.setAttribute("aria-expanded", String(this.prefsOpen));
    for (const part of [this.tablist, this.list]) part.hidden = this.prefsOpen;
    this.prefs.hidden = !this.prefsOpen;
    this.render();
    if (!this.prefsOpen) {
      this.reload();
      return;
    }
    this.prefs.replaceChildren(element("p", { class: "prefs-status" }, this.strings.loading));
    try {
      this.renderPreferences(await this.call("/inbox/preferences"));
      const first = this.prefs.querySelector("input:not([disabled])");
      if (first) first.focus();
    } catch (error) {
      const auth = error instanceof AuthError;
      this.prefs.replaceChildren(this.prefsStatus);
      this.prefsStatus.className = "prefs-status error";
      this.prefsStatus.textContent = auth ? this.strings.expired : this.strings.notSaved;
    }
  }

  renderPreferences(state) {
    const s = this.strings;
    const box = (attributes, checked, disabled, text, note) => {
      const label = element("label");
      const input = element("input", { type: "checkbox", ...attributes });
      input.checked = checked;
      input.disabled = disabled;
      label.append(input, element("span", {}, text));
      if (note) label.append(element("span", { class: "note" }, `(${note})`));
      return label;
    };
    const topics = element("fieldset");
    topics.append(element("legend", {}, s.topics));
    for (const topic of state.topics) {
      const text = topic.description || topic.name;
      const note = topic.transactional ? s.alwaysSent : "";
      topics.append(box({ "data-topic": topic.name }, topic.subscribed, topic.transactional, text, note));
    }
    const channels = element("fieldset");
    channels.append(element("legend", {}, s.channels));
    for (const channel of state.channels) {
      const text = s.kinds[channel.kind] || channel.kind;
      channels.append(box({ "data-channel": channel.kind }, channel.subscribed, false, text, ""));
    }
    this.prefsStatus.className = "prefs-status";
    this.prefsStatus.textContent = "";
    const parts = [];
    if (state.topics.length) parts.push(topics);
    if (state.channels.length) parts.push(channels);
    this.prefs.replaceChildren(...parts, this.prefsStatus);
  }

  async savePreference(input) {
    const { topic, channel } = input.dataset;
    const change = topic ? { topics: { [topic]: input.checked } } : { channels: { [channel]: input.checked } };
    try {
      const state = await this.call("/inbox/preferences", { method: "POST", body: change });
      // Keep the focus where it is: update the boxes instead of drawing them again.
      for (const item of state.topics) this.setBox(`[data-topic="${CSS.escape(item.name)}"]`, item.subscribed);
      for (const item of state.channels) this.setBox(`[data-channel="${CSS.escape(item.kind)}"]`, item.subscribed);
      this.prefsStatus.className = "prefs-status";
      this.prefsStatus.textContent = this.strings.saved;
    } catch (error) {
      input.checked = !input.checked;
      this.prefsStatus.className = "prefs-status error";
      this.prefsStatus.textContent = error instanceof AuthError ? this.strings.expired : this.strings.notSaved;
    }
  }

  setBox(selector, checked) {
    const box = this.prefs.querySelector(selector);
    if (box) box.checked = checked;
  }

  renderItem(item) {
    const s = this.strings;
    const li = element("li", { part: item.read ? "item" : "item unread", class: item.read ? "item" : "item unread" });
    const bodyId = `${this.uid}-body-${item.id}`;
    const open = element("button", {
      class: "open",
      type: "button",
      "aria-expanded": String(this.expanded.has(item.id)),
      "aria-controls": bodyId,
    });
    const dot = element("span", { class: "dot" });
    if (!item.read) {
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", s.unread);
    }
    open.append(
      dot,
      element("span", { part: "item-title", class: "item-title" }, item.title),
      element("time", { part: "time", class: "time", datetime: item.shown_at }, this.when(item.shown_at))
    );
    const rich = item.body_format === "markdown" || item.body_format === "html";
    const body = element("div", { part: "body", class: rich ? "body rich" : "body", id: bodyId });
    body.hidden = !this.expanded.has(item.id);
    body.append(bodyContent(item));
    const actions = element("div", { part: "actions", class: "actions" });
    const url = webUrl(item.url);
    if (url) {
      const link = element("a", { part: "link", href: url }, s.open);
      link.addEventListener("click", (event) => this.clickThrough(event, item, url));
      actions.append(link);
    }
    const archived = item.archived;
    const archive = element("button", { part: "archive", type: "button" }, archived ? s.unarchive : s.archive);
    archive.addEventListener("click", async () => {
      if (await this.act(item, archived ? "unarchive" : "archive")) this.drop(item);
    });
    const snooze = element("button", { part: "snooze", type: "button" }, s.snooze);
    snooze.addEventListener("click", async () => {
      if (await this.act(item, "snooze", { until: tomorrowAtNine() })) {
        this.drop(item);
        this.showStatus(s.snoozed);
      }
    });
    actions.append(archive, snooze);
    body.append(actions);
    open.addEventListener("click", () => this.toggle(item, open, body));
    li.append(open, body);
    return li;
  }

  async toggle(item, button, body) {
    const opening = body.hidden;
    body.hidden = !opening;
    button.setAttribute("aria-expanded", String(opening));
    if (opening) this.expanded.add(item.id);
    else this.expanded.delete(item.id);
    if (opening && !item.read) {
      const answer = await this.act(item, "read");
      if (answer) {
        item.read = true;
        const li = button.parentElement;
        li.className = "item";
        li.setAttribute("part", "item");
        const dot = button.querySelector(".dot");
        dot.removeAttribute("role");
        dot.removeAttribute("aria-label");
        this.markAll.hidden = this.counts.unread === 0;
      }
    }
  }

  async clickThrough(event, item, url) {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1) {
      this.act(item, "click"); // a new tab: record it and let the browser open it
      return;
    }
    event.preventDefault();
    await this.act(item, "click");
    window.location.assign(url);
  }

  drop(item) {
    this.items = this.items.filter((other) => other.id !== item.id);
    this.render();
  }

  when(iso) {
    const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
    const units = [
      ["year", 31536000],
      ["month", 2592000],
      ["week", 604800],
      ["day", 86400],
      ["hour", 3600],
      ["minute", 60],
    ];
    try {
      const format = new Intl.RelativeTimeFormat(this.locale, { numeric: "auto" });
      for (const [unit, size] of units) {
        if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
      }
      return format.format(0, "minute");
    } catch (error) {
      return new Date(iso).toLocaleString();
    }
  }
}

function tomorrowAtNine() {
  // A wall-clock time without an offset: the server reads it in the contact's timezone.
  const day = new Date(Date.now() + 86400000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}T09:00`;
}

if (!customElements.get("onetomany-inbox")) customElements.define("onetomany-inbox", OnetomanyInbox);
