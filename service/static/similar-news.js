// The "Similar news" box for sites that render in the browser: one script tag, then the element anywhere.
//   <script src="https://RECOMMENDER/similar-news.js" defer></script>
//   <similar-news article-id="N34700" limit="5"></similar-news>
// It fetches the JSON list from the server the script came from (RECOMMENDER_CORS_ORIGINS must allow the
// site) and builds the markup of the server's HTML box (service/templates/similar-news.html) with DOM calls:
// every value is set as text or an attribute, never parsed as HTML. No build step, no framework.
(() => {
  "use strict";
  const script = document.currentScript;
  const base = new URL(".", script && script.src ? script.src : location.href);
  // Default looks at zero specificity (:where), first in <head>: any rule of the site wins. data-no-style: none.
  const STYLE = `
    :where(.similar-news) {font: 15px/1.4 system-ui, sans-serif; max-width: 64rem}
    :where(.similar-news__items) {list-style: none; margin: 0; padding: 0; display: grid; gap: 1.2rem;
                                  grid-template-columns: repeat(auto-fill, minmax(14rem, 1fr))}
    :where(.similar-news__figure) {margin: 0}
    :where(.similar-news__image) {display: block; width: 100%; aspect-ratio: 16 / 9; object-fit: cover}
    :where(.similar-news__credit, .similar-news__date) {font-size: .78rem; color: #555}
    :where(.similar-news__title) {font-size: 1rem; margin: .35rem 0 .2rem}
    :where(.similar-news__title a) {color: inherit}
    :where(.similar-news__excerpt) {margin: .3rem 0 0; color: #333}`;
  if (!(script && script.hasAttribute("data-no-style"))) {
    document.head.prepend(Object.assign(document.createElement("style"), {textContent: STYLE}));
  }

  function longDate(iso) {
    return new Date(iso).toLocaleDateString("en-GB", {timeZone: "UTC", day: "numeric", month: "long", year: "numeric"});
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function renderItem(item) {
    const li = el("li", {"class": "similar-news__item", "data-id": item.id});
    if (item.image_url) {
      const figure = el("figure", {"class": "similar-news__figure"},
                        el("img", {"class": "similar-news__image", src: item.image_url, alt: "", loading: "lazy"}));
      if (item.image_credit) figure.append(el("figcaption", {"class": "similar-news__credit"}, `Photo: ${item.image_credit}`));
      li.append(figure);
    }
    li.append(el("h3", {"class": "similar-news__title"}, item.url ? el("a", {href: item.url}, item.title) : item.title));
    if (item.published_at) {
      li.append(el("time", {"class": "similar-news__date", datetime: item.published_at}, longDate(item.published_at)));
    }
    if (item.excerpt) li.append(el("p", {"class": "similar-news__excerpt"}, item.excerpt));
    return li;
  }

  // The box for a list as the API returns it ({article_id, items}); empty when there are no items.
  function renderBox(list) {
    if (!list.items.length) return document.createDocumentFragment();
    return el("aside", {"class": "similar-news", "aria-labelledby": "similar-news-heading"},
              el("h2", {id: "similar-news-heading", "class": "similar-news__heading"}, "Similar news"),
              el("ul", {"class": "similar-news__items"}, ...list.items.map(renderItem)));
  }

  class SimilarNewsElement extends HTMLElement {
    static get observedAttributes() { return ["article-id", "limit"]; }

    connectedCallback() { this.load(); }

    attributeChangedCallback() { if (this.isConnected) this.load(); }

    // Fetch the list again and render it; resolves once rendered (state in data-state: loading, ready, error).
    async load() {
      const id = this.getAttribute("article-id");
      if (!id) return;
      const url = new URL(`articles/${encodeURIComponent(id)}/similar`, base);
      if (this.hasAttribute("limit")) url.searchParams.set("limit", this.getAttribute("limit"));
      this.dataset.state = "loading";
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"}});
        if (!response.ok) throw new Error(`${response.status} ${(await response.json()).detail}`);
        const list = await response.json();
        this.replaceChildren(renderBox(list));
        this.dataset.state = "ready";
        this.dispatchEvent(new CustomEvent("similar-news-load", {detail: list}));
      } catch (error) {
        this.replaceChildren();  // no box rather than a broken one on the site's page
        this.dataset.state = "error";
        this.dataset.error = String(error.message || error);
      }
    }
  }

  window.SimilarNews = {renderBox, longDate};
  if (!customElements.get("similar-news")) customElements.define("similar-news", SimilarNewsElement);
})();
