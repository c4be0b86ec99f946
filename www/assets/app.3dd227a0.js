/*! rampart demo app | entry chunk | MIT License */
import { h, mount, icon, sparkline, debounce, createStore, services, sortBy, groupBy, uniq, quantile, sum, mean, formatBytes, formatNumber, formatPercent, formatDuration, formatDate, lookupMime, isCompressible, hashString, LOCALES, version as tkVersion } from "./vendor.4db4f5aa.js";

const LOGO_URL = "/assets/logo.82fac36e.png";
const APP_TITLE = "rampart demo";
const root = document.documentElement;
const settings = createStore("rampart-demo:settings", { theme: "system", locale: "en", compact: false });

function applyTheme(theme) {
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
}

/* ---------------------------------------------------------------- router */

const routes = [
  { path: "/", title: "Home", icon: "home", view: homeView },
  { path: "/dashboard", title: "Dashboard", icon: "chart", view: dashboardView },
  { path: "/dashboard/settings", title: "Settings", icon: "gear", view: settingsView },
  { path: "/about", title: "About", icon: "info", view: aboutView },
];

function normalize(pathname) {
  let p = pathname || "/";
  try { p = decodeURI(p); } catch (e) { /* keep raw */ }
  if (p === "/index.html") return "/";
  if (p.length > 1 && p.endsWith("/")) p = p.replace(/\/+$/, "") || "/";
  return p;
}

function matchRoute(pathname) {
  const p = normalize(pathname);
  return routes.find((r) => r.path === p) || null;
}

function navigate(href, { replace = false } = {}) {
  const url = new URL(href, location.href);
  if (url.origin !== location.origin) { location.assign(url.href); return; }
  const target = url.pathname + url.search + url.hash;
  const current = location.pathname + location.search + location.hash;
  if (target !== current) {
    if (replace) history.replaceState({ at: Date.now() }, "", target);
    else history.pushState({ at: Date.now() }, "", target);
  }
  render();
  if (typeof window.scrollTo === "function") window.scrollTo(0, 0);
}

function onLinkClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target && event.target.closest ? event.target.closest("a[data-link]") : null;
  if (!a || a.target === "_blank" || a.hasAttribute("download")) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
}

function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}

/* ---------------------------------------------------------------- shell */

let shell = null;

function buildShell() {
  const nav = h("nav", { class: "nav", "aria-label": "Main" },
    routes.map((r) => h("a", { href: r.path, "data-link": true, dataset: { route: r.path } }, icon(r.icon, 16), r.title)));
  const pathCode = h("code", { id: "current-path" }, "/");
  const routeName = h("span", { id: "current-route" }, "");
  const main = h("main", { id: "view", class: "view", tabindex: "-1" });
  const header = h("header", { class: "site-header" },
    h("a", { class: "brand", href: "/", "data-link": true },
      h("img", { src: LOGO_URL, width: 36, height: 36, alt: "" }),
      h("h1", { id: "app-title" }, APP_TITLE)),
    nav);
  const bar = h("div", { class: "path-bar" },
    h("span", null, "Current path: ", pathCode),
    h("span", null, "Route: ", routeName),
    h("span", null, "Rendered client-side by a ", h("code", null, "history.pushState"), " router"));
  return { el: [header, bar, main], nav, pathCode, routeName, main };
}

function render() {
  const path = normalize(location.pathname);
  const route = matchRoute(path);
  shell.pathCode.textContent = path + location.search + location.hash;
  shell.routeName.textContent = route ? route.title : "not found";
  for (const a of shell.nav.querySelectorAll("a[data-link]")) {
    if (route && a.getAttribute("href") === route.path) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  mount(shell.main, route ? route.view() : notFoundView(path));
  root.dataset.route = route ? route.path : "404";
  document.title = route && route.path !== "/" ? `${route.title} · ${APP_TITLE}` : APP_TITLE;
}

/* ---------------------------------------------------------------- views */

function homeView() {
  const tbody = h("tbody");
  const fill = () => {
    const entries = typeof performance !== "undefined" && performance.getEntriesByType ? performance.getEntriesByType("resource") : [];
    const rows = entries.filter((e) => { try { return new URL(e.name).origin === location.origin; } catch (x) { return false; } });
    mount(tbody, rows.length ? rows.map((e) => {
      const u = new URL(e.name);
      const mime = lookupMime(u.pathname);
      return h("tr", null,
        h("td", null, h("code", null, u.pathname)),
        h("td", null, mime.split(";")[0]),
        h("td", { class: "num" }, e.transferSize ? formatBytes(e.transferSize) : "cached / n.a."),
        h("td", { class: "num" }, e.decodedBodySize ? formatBytes(e.decodedBodySize) : "–"),
        h("td", null, isCompressible(mime) ? h("span", { class: "badge ok" }, "compressible") : h("span", { class: "badge" }, "binary")));
    }) : h("tr", null, h("td", { colspan: 5 }, "No resource timing entries yet.")));
  };
  fill();
  return [
    h("h2", null, "Welcome"),
    h("p", null, "This is the demo single-page app bundled with ", h("strong", null, "rampart"),
      ", an HTTPS static file server for SPAs. Everything here is plain static files: an HTML shell, content-hashed CSS/JS bundles, a WOFF2 font, a PNG logo, a favicon and a web app manifest."),
    h("div", { class: "grid" },
      card("Routes", String(routes.length), "client-side, via pushState"),
      card("Vendor kit", "v" + tkVersion, "imported as an ES module"),
      card("Hashed assets", "5", "safe to cache immutably")),
    h("p", null, "Try a deep link: open ", link("/dashboard/settings", "/dashboard/settings"),
      " and reload the page — the server should answer with this same index.html (SPA fallback) and the router picks the right view."),
    h("h3", null, "Assets loaded by this page"),
    h("table", { class: "data" },
      h("thead", null, h("tr", null, h("th", null, "Path"), h("th", null, "Type"), h("th", null, "Transferred"), h("th", null, "Decoded"), h("th", null, ""))),
      tbody),
    h("p", null, h("button", { type: "button", class: "secondary", onClick: fill }, "Refresh list")),
  ];
}

function card(title, big, sub) {
  return h("div", { class: "card" }, h("h3", null, title), h("div", { class: "big" }, big), h("div", null, sub));
}

function dashboardView() {
  const all = services();
  const regions = groupBy(all, "region");
  const tbody = h("tbody");
  const counter = h("span", { class: "badge" }, "");
  const show = (q) => {
    const needle = q.trim().toLowerCase();
    const list = needle ? all.filter((s) => s.name.includes(needle) || s.region.includes(needle) || s.tier.includes(needle)) : all;
    counter.textContent = `${formatNumber(list.length)} match${list.length === 1 ? "" : "es"}`;
    mount(tbody, sortBy(list, "p99", true).slice(0, 12).map((s) => h("tr", null,
      h("td", null, h("code", null, s.name)),
      h("td", null, s.region),
      h("td", null, s.tier),
      h("td", { class: "num" }, formatPercent(s.availability, 3)),
      h("td", { class: "num" }, formatDuration(s.p50)),
      h("td", { class: "num" }, formatDuration(s.p99)),
      h("td", null, sparkline(s.history, 90, 20)))));
  };
  show("");
  return [
    h("h2", null, "Dashboard"),
    h("div", { class: "grid" },
      card("Services", formatNumber(all.length), `${uniq(all.map((s) => s.tier)).length} tiers`),
      card("Regions", String(regions.size), [...regions.keys()].slice(0, 3).join(", ") + "…"),
      card("Median availability", formatPercent(quantile(all.map((s) => s.availability), 0.5), 3), "across all services"),
      card("Total traffic", formatNumber(sum(all, (s) => s.rps)) + " rps", "mean p50 " + formatDuration(mean(all, (s) => s.p50)))),
    h("p", null,
      h("label", null, "Filter ", h("input", { type: "text", placeholder: "name, region or tier", onInput: debounce((e) => show(e.target.value), 120) })),
      " ", counter),
    h("table", { class: "data" },
      h("thead", null, h("tr", null, h("th", null, "Service"), h("th", null, "Region"), h("th", null, "Tier"), h("th", null, "Availability"), h("th", null, "p50"), h("th", null, "p99"), h("th", null, "Trend"))),
      tbody),
    h("p", null, "Data is a generated table shipped inside the vendor bundle. Adjust preferences under ", link("/dashboard/settings", "Dashboard › Settings"), "."),
  ];
}

function settingsView() {
  const s = settings.get();
  const preview = h("output", { id: "date-preview" }, formatDate(Date.now(), s.locale));
  const themeSel = h("select", { name: "theme" }, ["system", "light", "dark"].map((t) => h("option", { value: t, selected: t === s.theme }, t)));
  const localeSel = h("select", { name: "locale" }, Object.keys(LOCALES).map((l) => h("option", { value: l, selected: l === s.locale }, l)));
  const onChange = () => {
    const next = settings.set({ theme: themeSel.value, locale: localeSel.value });
    applyTheme(next.theme);
    preview.textContent = formatDate(Date.now(), next.locale);
  };
  themeSel.addEventListener("change", onChange);
  localeSel.addEventListener("change", onChange);
  return [
    h("h2", null, "Settings"),
    h("p", { class: "notice" }, "You are on a nested route (", h("code", null, "/dashboard/settings"),
      "). If you loaded this URL directly, the server had no file at that path and answered with index.html instead — that is the SPA fallback at work."),
    h("form", { class: "settings", onSubmit: (e) => e.preventDefault() },
      h("label", null, "Theme ", themeSel),
      h("label", null, "Date locale ", localeSel),
      h("div", null, "Preview: ", preview),
      h("div", null,
        h("button", { type: "button", class: "secondary", onClick: () => { const d = settings.reset(); applyTheme(d.theme); navigate(location.pathname, { replace: true }); } }, "Reset"),
        " ", link("/dashboard", "← back to the dashboard"))),
    h("p", null, "Preferences are kept in localStorage under ", h("code", null, "rampart-demo:settings"), "."),
  ];
}

function aboutView() {
  const out = h("pre", { id: "probe-output" }, "(not run)");
  const probe = async () => {
    const targets = ["/manifest.webmanifest", "/robots.txt", "/.well-known/security.txt", "/assets/missing.00000000.js", "/no/such/page"];
    const lines = [];
    for (const t of targets) {
      try {
        const r = await fetch(t, { cache: "no-store" });
        lines.push(`${r.status} ${t}  ${r.headers.get("content-type") || "(no content-type)"}`);
      } catch (e) {
        lines.push(`ERR ${t}  ${e && e.message}`);
      }
    }
    out.textContent = lines.join("\n");
  };
  return [
    h("h2", null, "About"),
    h("p", null, "The files in this site are the output of a (simulated) Vite build. Asset names carry the first 8 hex digits of the SHA-256 of their content, so they can be cached forever; index.html must not be."),
    h("ul", null,
      h("li", null, h("a", { href: "/robots.txt" }, "/robots.txt")),
      h("li", null, h("a", { href: "/.well-known/security.txt" }, "/.well-known/security.txt")),
      h("li", null, h("a", { href: "/manifest.webmanifest" }, "/manifest.webmanifest")),
      h("li", null, h("a", { href: "/favicon.ico" }, "/favicon.ico"))),
    h("p", null, "Probe a few URLs from the browser (status and Content-Type):"),
    h("p", null, h("button", { type: "button", onClick: probe }, "Run probe")),
    out,
    h("p", null, `tinykit ${tkVersion} · build ${hashString(LOGO_URL + tkVersion)}`),
  ];
}

function notFoundView(path) {
  return [
    h("h2", null, "Not found"),
    h("p", null, "No client-side route matches ", h("code", null, path), ". The server still served the app shell; the router decided this page does not exist."),
    h("p", null, link("/", "Go home")),
  ];
}

/* ---------------------------------------------------------------- boot */

function boot() {
  const status = document.getElementById("status");
  try {
    applyTheme(settings.get().theme);
    shell = buildShell();
    mount(document.getElementById("app"), shell.el);
    document.addEventListener("click", onLinkClick);
    window.addEventListener("popstate", render);
    render();
    root.dataset.app = "ready";
    if (status) status.textContent = "App ready";
  } catch (err) {
    root.dataset.app = "error";
    if (status) status.textContent = "App error: " + (err && err.message ? err.message : String(err));
    throw err;
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot, { once: true });
else boot();
