"""What the page does in the browser on its own: the light/dark switch, the phone menu,
Enter while the model writes, and the actions under each chat bubble. No remote fetches.

`HEAD` goes into the page's <head>. Its listeners sit on the document, in the capture
phase, so they work whatever Gradio renders, and re-renders, later:

- the theme: Gradio puts `dark` on <body> from the system's setting; the choice made
  with the switch is kept in localStorage and put back whenever Gradio changes it;
- Enter in the message box does nothing while Stop shows (Send's place while a reply
  is written), as SillyTavern's Send is disabled then;
- a code block's Copy button (`services.render`) copies the code, wherever it shows;
- a click on a bubble's action (`services.chat.bubbles`) does not select the bubble:
  Copy copies the message's text, the swipe arrows press the swipe buttons, and the
  others go to the server through the hidden `#message-action` box and `#message-act`
  button (`ui.chat.selection`). While the model writes they wait.
"""

from __future__ import annotations

HEAD = """<script>
(() => {
  const THEME = "hearth-theme";
  const stored = () => { try { return localStorage.getItem(THEME); } catch (e) { return null; } };
  const applyTheme = () => {
    const mode = stored();
    if (!document.body || (mode !== "dark" && mode !== "light")) return;
    if (document.body.classList.contains("dark") !== (mode === "dark")) {
      document.body.classList.toggle("dark", mode === "dark");
    }
  };
  const shown = (el) => !!el && el.offsetParent !== null;
  const writing = () => shown(document.querySelector("#stop"));

  const copy = (el) => copyText(el, el.closest(".message-content, .message")?.querySelector(".hearth-text"));
  // A code block's Copy button (services.render), wherever the block is shown.
  const copyCode = (event) => {
    const el = event.target.closest?.(".hearth-copy-code");
    if (!el) return false;
    event.preventDefault();
    event.stopPropagation();  // not a click on the bubble
    copyText(el, el.closest(".hearth-code")?.querySelector("code"));
    return true;
  };
  const copyText = async (el, source) => {
    // The text as shown, less what is not the message's: the Copy buttons of its code
    // blocks, and what a thinking model thought (its folded block).
    document.body.classList.add("hearth-copying");
    const text = source?.innerText || "";
    document.body.classList.remove("hearth-copying");
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {  // no clipboard API outside a secure context (http on the network)
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    const label = el.textContent;
    el.textContent = "Copied";
    setTimeout(() => { el.textContent = label; }, 1200);
  };

  const act = (el) => {
    const part = (prefix) => [...el.classList].find((c) => c.startsWith(prefix))?.slice(prefix.length);
    const name = part("act-");
    if (name === "copy") return copy(el);
    if (writing()) return;
    if (name === "swipe-left" || name === "swipe-right") return document.querySelector("#" + name)?.click();
    const box = document.querySelector("#message-action textarea");
    if (!box) return;
    box.value = name + ":" + part("seq-");
    box.dispatchEvent(new Event("input", { bubbles: true }));
    document.querySelector("#message-act")?.click();
    if (name === "edit") bringEditor(Date.now());
  };

  // The edit box opens below the chat: bring it into view once it shows.
  const bringEditor = (since) => {
    const editor = document.querySelector("#message-edit textarea");
    if (shown(editor)) {
      editor.scrollIntoView({ block: "center" });
      editor.focus({ preventScroll: true });
    } else if (Date.now() - since < 5000) {
      setTimeout(() => bringEditor(since), 100);
    }
  };

  const onAction = (event) => {
    const el = event.target.closest?.("#history .hearth-act");
    if (!el) return;
    event.preventDefault();
    event.stopPropagation();  // not a click on the bubble: that opens the edit panel
    act(el);
  };

  window.hearth = {
    toggleTheme() {
      const dark = !document.body.classList.contains("dark");
      try { localStorage.setItem(THEME, dark ? "dark" : "light"); } catch (e) {}
      document.body.classList.toggle("dark", dark);
    },
    // On a phone a tab's side column folds away; its menu button shows it ("chat",
    // "story" or "adventure": the prefix of the column's and the top row's ids).
    toggleMenu(tab) {
      const open = document.body.classList.toggle(`hearth-menu-${tab}`);
      document.querySelector(open ? `#${tab}-sidebar` : `#${tab}-top`)?.scrollIntoView({ block: "start" });
    },
  };

  const watchTheme = () => {
    applyTheme();
    new MutationObserver(applyTheme).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  };
  // Gradio may add this script to <head> after the document has loaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watchTheme);
  else watchTheme();
  document.addEventListener("click", (event) => copyCode(event) || onAction(event), true);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing
        && event.target.closest?.("#message") && writing()) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    if (event.key === "Enter" || event.key === " ") copyCode(event) || onAction(event);
  }, true);
})();
</script>"""

# The bubbles' frame (`services.chat.bubbles`), the phone layout, and the header's switch.
CSS = """
#history .hearth-who, #live-reply .hearth-who {
  display: flex; align-items: center; gap: 0.5em; margin-bottom: 0.3em; font-weight: 600;
}
#history .hearth-avatar, #live-reply .hearth-avatar {
  width: 32px; height: 32px; min-width: 32px; margin: 0; border-radius: 50%; object-fit: cover;
}
.hearth-initial {
  display: inline-flex; align-items: center; justify-content: center; color: #fff; font-size: 0.95em;
}
.hearth-hue-0 { background: #b5642d; } .hearth-hue-1 { background: #4f7a3a; }
.hearth-hue-2 { background: #3d6d99; } .hearth-hue-3 { background: #8a4f8f; }
.hearth-hue-4 { background: #9a7a1c; } .hearth-hue-5 { background: #3f8580; }
#history .hearth-acts {
  display: flex; flex-wrap: wrap; gap: 0.2em 0.9em; margin-top: 0.4em;
  font-size: 0.8em; opacity: 0.6;
}
#history .message:hover .hearth-acts, #history .hearth-acts:focus-within { opacity: 1; }
#history .hearth-act { cursor: pointer; text-decoration: underline dotted; }
#history .hearth-act:hover { color: var(--color-accent); }
#history .act-swipe-left, #history .act-swipe-right {
  font-weight: 700; text-decoration: none; padding: 0 0.35em;
}
.hearth-think { margin-bottom: 0.6em; font-size: 0.92em; opacity: 0.85; }
.hearth-pictures { display: flex; flex-wrap: wrap; gap: 0.4em; margin-bottom: 0.5em; }
#history img.hearth-picture {
  max-width: min(240px, 100%); max-height: 240px; width: auto; height: auto; margin: 0; border-radius: 6px;
}
#attached-picture { max-width: 140px; }
.hearth-think summary { cursor: pointer; font-style: italic; }
.hearth-think .hearth-thinking { border-left: 3px solid var(--border-color-primary); padding-left: 0.7em; }
/* The story box is read-only while the model writes into it (ui/story/tab.py). */
#story-text textarea:disabled { cursor: progress; background: var(--background-fill-secondary); }
.hearth-copying .hearth-copy-code, .hearth-copying .hearth-think { display: none !important; }
.hearth-code { position: relative; }
.hearth-code .hearth-copy-code {
  position: absolute; top: 0.3em; right: 0.4em; z-index: 1; cursor: pointer;
  font-size: 0.75em; padding: 0.1em 0.5em; border-radius: 4px; opacity: 0.7;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary);
}
.hearth-code .hearth-copy-code:hover, .hearth-code .hearth-copy-code:focus { opacity: 1; }
#chat-top { align-items: center; }
#model-note { font-size: 0.9em; }
#model-note p { margin: 0; }
.hearth-menu { display: none; }
#undo-row { align-items: center; }
#header { align-items: center; }
#header #theme-toggle { max-width: 9em; }
/* Gradio scopes rules inside @media to its container, so a rule that starts at <body> stays
   outside one; it outweighs the scoped rule that folds the sidebar away. */
body.hearth-menu-chat .gradio-container .contain #chat-sidebar,
body.hearth-menu-story .gradio-container .contain #story-sidebar,
body.hearth-menu-adventure .gradio-container .contain #adventure-sidebar { display: flex !important; }
#history .hearth-swipe { white-space: nowrap; }
@media (max-width: 767px) {
  .hearth-menu { display: flex; }
  #story-sidebar, #adventure-sidebar { display: none !important; }
  #story-top button, #adventure-top button { flex: 0 0 auto !important; }
  #story-buttons, #adventure-buttons { flex-wrap: wrap; }
  #story-buttons button, #adventure-buttons button { min-width: 0 !important; flex: 1 1 28% !important; }
  #chat-top { flex-wrap: wrap; }
  #chat-top #model-note { order: -1; flex: 1 1 100% !important; font-size: 0.85em; }
  #chat-top button { flex: 1 1 0 !important; }
  #chat-sidebar { display: none !important; }
  #history { height: 46vh !important; max-height: 46vh; }
  #history [data-testid="block-label"] { display: none; }  /* it floats over the first bubble */
  #reply-tools button { min-width: 0 !important; padding-left: 0.4em; padding-right: 0.4em; }
  #message-row { flex-wrap: nowrap; }
  #message-row button { min-width: 4.5em !important; flex: 0 0 auto !important; }
  #swipe-left, #swipe-right, #swipe-label { display: none !important; }  /* the reply has its own */
}
"""
