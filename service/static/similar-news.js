// The "Similar news" box for sites that render in the browser: one script tag, then the element anywhere.
//   <script src="https://RECOMMENDER/similar-news.js" defer></script>
//   <similar-news article-id="N34700" limit="5"></similar-news>
// It fetches the JSON list from the server the script came from (RECOMMENDER_CORS_ORIGINS must allow the
// site) and builds the markup of the server's HTML box (service/templates/similar-news.html) with DOM calls:
// every value is set as text or an attribute, never parsed as HTML. No build step, no framework.
// Attributes (README "The box on the site"): article-id, limit, loading ("lazy" | "eager"), timeout (ms),
// lang (else the page's), time-zone, events ("off": no impressions or clicks reported).
(() => {
  "use strict";
  const script = document.currentScript;
  const base = new URL(".", script && script.src ? script.src : location.href);
  // The app fills these two in when it serves this file: service/static/similar-news.css and the box's words
  // per language (service/html.py BOX_STRINGS), so that the server's box and this one say the same.
  const CSS = /*similar-news.css*/"";
  const STRINGS = /*strings*/{"en": {"heading": "Similar news", "photo": "Photo:", "date_locale": "en-GB"}};
  const NEAR = "600px 0px";  // start fetching this far ahead of the viewport
  const DEFAULT_LIMIT = 8, DEFAULT_TIMEOUT_MS = /*timeout*/1500, IMPRESSION_MS = 1000, FLUSH_MS = 1000;
  let boxes = 0;  // numbers each box's heading id: two boxes on a page never share one

  // Styles without an inline <style> (blocked by a Content-Security-Policy without 'unsafe-inline'): a
  // constructed stylesheet, else a <link> to similar-news.css carrying this script's nonce; none when the
  // page links the stylesheet itself or the script tag says data-no-style.
  function addStyles() {
    if (script && script.hasAttribute("data-no-style")) return;
    if (document.querySelector('link[rel~="stylesheet"][href*="similar-news.css"]')) return;
    if (CSS && "adoptedStyleSheets" in Document.prototype) {
      try {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
        return;
      } catch (error) { /* not allowed here: link the file */ }
    }
    const link = Object.assign(document.createElement("link"), {rel: "stylesheet", href: new URL("similar-news.css", base)});
    if (script && script.nonce) link.nonce = script.nonce;
    document.head.prepend(link);
  }

  // The words and date format for a language tag ("uk", "ru-UA", "en-US"): the tag's language, else English.
  function wordsFor(lang) {
    const key = String(lang || "en").toLowerCase().split("-")[0];
    if (!STRINGS[key]) return STRINGS.en;
    // A bare language takes the shipped date format ("en": 28 October 2019); a regional tag its own (en-US).
    return {...STRINGS[key], date_locale: key === String(lang).toLowerCase() ? STRINGS[key].date_locale : lang};
  }

  function longDate(iso, words = wordsFor("en"), timeZone = "UTC") {
    const options = {day: "numeric", month: "long", year: "numeric"};
    try {
      return new Intl.DateTimeFormat(words.date_locale, {...options, timeZone}).format(new Date(iso));
    } catch (error) {  // an unknown time zone or locale: UTC, in English
      return new Intl.DateTimeFormat("en-GB", {...options, timeZone: "UTC"}).format(new Date(iso));
    }
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function photo(item, words) {
    const figure = el("figure", {"class": "similar-news__figure"});
    if (!item.image_url) return figure.appendChild(el("span", {"class": "similar-news__placeholder"})) && figure;
    const img = el("img", {"class": "similar-news__image", src: item.image_url, alt: "", width: "160", height: "90",
                           loading: "lazy"});
    // The photo links to the article too, as a second way in: out of the tab order and hidden from screen readers.
    figure.append(item.url ? el("a", {"class": "similar-news__photo", href: item.url, tabindex: "-1", "aria-hidden": "true"}, img) : img);
    if (item.image_credit) figure.append(el("figcaption", {"class": "similar-news__credit"}, `${words.photo} ${item.image_credit}`));
    return figure;
  }

  function renderItem(item, words, timeZone) {
    const li = el("li", {"class": "similar-news__item", "data-id": item.id}, photo(item, words));
    li.append(el("h3", {"class": "similar-news__title"}, item.url ? el("a", {href: item.url}, item.title) : item.title));
    if (item.published_at) {
      li.append(el("time", {"class": "similar-news__date", datetime: item.published_at}, longDate(item.published_at, words, timeZone)));
    }
    if (item.excerpt) li.append(el("p", {"class": "similar-news__excerpt"}, item.excerpt));
    return li;
  }

  // The box for a list as the API returns it ({article_id, items}); empty when there are no items.
  // The heading may be named (the editor's draft preview: two boxes on a page are two landmarks, each needs
  // a name of its own).
  function renderBox(list, {lang = "en", timeZone = "UTC", headingId = `similar-news-heading-${++boxes}`, heading} = {}) {
    if (!list.items.length) return document.createDocumentFragment();
    const words = wordsFor(lang);
    return el("aside", {"class": "similar-news", "aria-labelledby": headingId},
              el("h2", {id: headingId, "class": "similar-news__heading"}, heading || words.heading),
              el("ul", {"class": "similar-news__items"}, ...list.items.map((item) => renderItem(item, words, timeZone))));
  }

  // Impressions and clicks, batched into one POST /events per second (and on leaving the page).
  const outbox = [];
  let flushTimer = 0;

  function report(events, now = false) {
    outbox.push(...events);
    if (now) flush();
    else if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function flush() {
    clearTimeout(flushTimer);
    flushTimer = 0;
    const url = new URL("events", base).href;
    // A string goes as text/plain, which the service takes for /events: no CORS preflight, which a beacon
    // (sent with credentials) would not pass. A beacon refused (over the browser's quota): a keepalive fetch.
    while (outbox.length) {
      const body = JSON.stringify(outbox.splice(0, 500));
      if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
        fetch(url, {method: "POST", body, keepalive: true, mode: "no-cors", credentials: "omit"}).catch(() => {});
      }
    }
  }

  addEventListener("pagehide", flush);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") flush(); });

  class SimilarNewsElement extends HTMLElement {
    static get observedAttributes() { return ["article-id", "limit"]; }

    constructor() {
      super();
      this.url = null;         // the list this element shows or is fetching: one fetch per list
      this.controller = null;  // aborts that fetch
      this.visible = false;
      this.seenTimer = 0;
    }

    connectedCallback() {
      this.watch();
      this.schedule();
    }

    disconnectedCallback() {
      for (const observer of [this.near, this.view]) if (observer) observer.disconnect();
      this.near = this.view = null;
      clearTimeout(this.seenTimer);
      this.seenTimer = 0;
      if (this.dataset.state === "waiting") this.url = null;  // not fetched yet: start again when put back
    }

    attributeChangedCallback() { if (this.isConnected) this.schedule(); }

    // Fetch the list again (same attributes) and render it; resolves once rendered.
    load() {
      this.url = null;
      return this.start();
    }

    // Attribute changes made together (as on upgrade: every attribute, then the connection) make one fetch.
    schedule() {
      if (this.scheduled) return;
      this.scheduled = true;
      queueMicrotask(() => { this.scheduled = false; if (this.isConnected) this.start(); });
    }

    listUrl() {
      const id = this.getAttribute("article-id");
      if (!id) return null;
      const url = new URL(`articles/${encodeURIComponent(id)}/similar`, base);
      if (this.hasAttribute("limit")) url.searchParams.set("limit", this.getAttribute("limit"));
      return url.href;
    }

    start() {
      const url = this.listUrl();
      if (url === this.url) return Promise.resolve();
      if (this.controller) this.controller.abort();
      if (this.near) this.near.disconnect();
      this.url = url;
      this.list = null;
      if (!url) {
        this.replaceChildren();
        return Promise.resolve();
      }
      this.reserve();
      this.dataset.state = "waiting";
      if (this.getAttribute("loading") === "eager") return this.fetchList(url);
      return new Promise((resolve) => {
        this.near = new IntersectionObserver((entries) => {
          if (!entries.some((entry) => entry.isIntersecting)) return;
          this.near.disconnect();
          resolve(this.fetchList(url));
        }, {rootMargin: NEAR});
        this.near.observe(this);
      });
    }

    // The space the box will take, held until the list comes (sized by CSS from the limit: no page jump).
    reserve() {
      const limit = Number.parseInt(this.getAttribute("limit"), 10);
      this.style.setProperty("--similar-news-count", String(limit > 0 ? limit : DEFAULT_LIMIT));
      this.toggleAttribute("data-reserved", true);
      delete this.dataset.late;
    }

    // Let go of the reserved space, unless the reader sees it (then when it leaves the view: no visible move).
    release() {
      if (!this.visible) this.removeAttribute("data-reserved");
    }

    timeout() {
      const ms = Number(this.getAttribute("timeout"));
      return ms > 0 ? ms : DEFAULT_TIMEOUT_MS;
    }

    async fetchList(url) {
      const controller = this.controller = new AbortController();
      this.dataset.state = "loading";
      const timer = setTimeout(() => this.late(controller), this.timeout());
      try {
        // "no-cache": the browser asks again each view (a 304 from the CDN when nothing changed), so a takedown the
        // CDN was purged of leaves this page at once, not when the browser's copy expires (a browser is never purged).
        const response = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-cache",
                                           signal: controller.signal});
        if (!response.ok) throw new Error(`${response.status} ${(await response.json()).detail}`);
        const list = await response.json();
        if (controller.signal.aborted) return;
        this.show(list);
      } catch (error) {
        if (controller.signal.aborted) return;  // replaced by another list, or given up (data-state says which)
        this.replaceChildren();  // no box rather than a broken one on the site's page
        this.dataset.state = "error";
        this.dataset.error = String(error.message || error);
        this.release();
      } finally {
        clearTimeout(timer);
      }
    }

    // The list is late: out of view the element gives up and collapses; in view it keeps its space and waits
    // until the reader scrolls away (then gives up) or the list comes.
    late(controller) {
      this.dataset.late = "";
      if (!this.visible) this.giveUp(controller);
    }

    giveUp(controller) {
      controller.abort();
      this.dataset.state = "timeout";
      this.replaceChildren();
      this.removeAttribute("data-reserved");
    }

    show(list) {
      const lang = (this.closest("[lang]") || document.documentElement).lang || "en";
      const timeZone = this.getAttribute("time-zone") || (script && script.dataset.timeZone) || "UTC";
      this.replaceChildren(renderBox(list, {lang, timeZone}));
      this.list = list;
      this.dataset.state = "ready";
      this.release();
      this.dispatchEvent(new CustomEvent("similar-news-load", {detail: list}));
      if (this.visible) this.countSoon();
    }

    // One observer for what the reader sees: the reserved space, the give-up when late, and the impression
    // (half of the box, or half of the viewport, in view for a second: the IAB rule).
    watch() {
      this.view = new IntersectionObserver((entries) => {
        const entry = entries[entries.length - 1];
        const viewport = entry.rootBounds ? entry.rootBounds.height : innerHeight;
        this.visible = entry.isIntersecting;
        const seen = entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= viewport / 2;
        if (!this.visible && this.dataset.state === "loading" && "late" in this.dataset) this.giveUp(this.controller);
        if (!this.visible && this.dataset.state !== "loading" && this.dataset.state !== "waiting") this.release();
        if (seen && this.visible) {
          this.countSoon();
        } else {
          clearTimeout(this.seenTimer);
          this.seenTimer = 0;
        }
      }, {threshold: [0, 0.25, 0.5, 0.75, 1]});
      this.view.observe(this);
    }

    countSoon() {
      if (this.seenTimer || !this.list || this.list.counted || this.getAttribute("events") === "off") return;
      this.seenTimer = setTimeout(() => this.counted(this.list), IMPRESSION_MS);
    }

    counted(list) {
      this.seenTimer = 0;
      if (list !== this.list || list.counted) return;
      list.counted = true;
      report(list.items.map((item, n) => this.event("impression", list, item, n)));
    }

    event(type, list, item, n) {
      return {type, article_id: list.article_id, item_id: item.id, position: n + 1, list_id: list.list_id,
              variant: list.variant, ts: new Date().toISOString()};
    }

    // A click on an item's link (title or photo; middle clicks too): sent at once, the page may be leaving.
    onClick(event) {
      const link = event.target.closest && event.target.closest("a[href]");
      const li = link && link.closest(".similar-news__item");
      if (!li || !this.list || this.getAttribute("events") === "off") return;
      const n = this.list.items.findIndex((item) => item.id === li.dataset.id);
      if (n >= 0) report([this.event("click", this.list, this.list.items[n], n)], true);
    }
  }

  // Listeners of the element's own, once per element (the class may not add them in its constructor).
  const define = () => {
    for (const type of ["click", "auxclick"]) {
      document.addEventListener(type, (event) => {
        const box = event.target.closest && event.target.closest("similar-news");
        if (box instanceof SimilarNewsElement && (event.type === "click" || event.button === 1)) box.onClick(event);
      }, true);
    }
    customElements.define("similar-news", SimilarNewsElement);
  };

  window.SimilarNews = {renderBox, longDate};
  if (!customElements.get("similar-news")) {
    addStyles();
    define();
  }
})();
