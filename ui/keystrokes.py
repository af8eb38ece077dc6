"""Nothing typed is lost: two races in Gradio's page (6.31), closed by a script in <head>.

A field that has just appeared. Gradio builds the fields of a closed accordion, or of a
tab not shown yet, only when it opens, and a frame later sets them to the values the
server sent meanwhile. Whatever was typed in that frame was overwritten: a system prompt
typed the moment Prompt opened was lost, and then saved empty with the chat (the
flaky `test_chat_controls`; on a machine busy running the model a frame is long). The
script keeps what is typed into a field in its first frames and puts it back, as an
input event, once Gradio has set the field.

A table cell. Gradio's table opens a selected cell's editor on the first key typed into
it, but drops that key: "ghost" typed into a new world-info row became "host" (a bare
`gr.Dataframe` does the same). The script types each key that comes before the editor
has the focus into the editor once it has, where the caret is, as the key would have.
Check boxes and keys with a modifier (shortcuts) are left to the table.
"""

from __future__ import annotations

HEAD = """<script>
(() => {
  // -- a field that has just appeared ------------------------------------------------
  const fresh = new WeakSet();
  const typed = new WeakMap();  // a fresh field -> its value as the user left it
  const TEXT = "textarea, input:not([type]), input[type=text], input[type=number], input[type=search], "
    + "input[type=password], input[type=url], input[type=email]";
  const isField = (el) => el instanceof HTMLElement && el.matches(TEXT) && !el.closest("[role=gridcell]");
  const settle = (el) => {
    fresh.add(el);
    // Gradio sets a new field's values a frame after building it; two frames and a
    // moment on, the field is the user's.
    requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
      fresh.delete(el);
      const value = typed.get(el);
      typed.delete(el);
      if (value !== undefined && el.value !== value) {
        el.value = value;
        el.dispatchEvent(new Event("input", { bubbles: true }));
      }
    }, 50)));
  };
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof Element)) continue;
        if (isField(node)) settle(node);
        node.querySelectorAll(TEXT).forEach((el) => { if (isField(el)) settle(el); });
      }
    }
  }).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("input", (event) => {
    if (fresh.has(event.target)) typed.set(event.target, event.target.value);
  }, true);

  // -- a table cell ----------------------------------------------------------------------
  let pending = null;  // {cell, keys}: typed into a cell whose editor has not the focus yet
  const editor = (el, cell) =>
    !!el && cell.contains(el) && (el.tagName === "TEXTAREA" || el.tagName === "INPUT");
  const flush = () => {
    const keys = pending.keys;
    pending = null;
    document.execCommand("insertText", false, keys);
  };
  document.addEventListener("focusin", (event) => {
    if (pending && editor(event.target, pending.cell)) flush();
  }, true);
  document.addEventListener("keydown", (event) => {
    if (pending && editor(event.target, pending.cell)) flush();  // before this key lands
    const cell = event.target;
    if (!(cell instanceof Element) || cell.getAttribute("role") !== "gridcell") return;
    if (event.key.length !== 1 || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (cell.querySelector(".bool-cell")) return;
    event.preventDefault();  // the table still opens the editor; the key is typed into it
    if (pending && pending.cell === cell) {
      pending.keys += event.key;
      return;
    }
    pending = { cell, keys: event.key };
    setTimeout(() => {
      if (!pending || pending.cell !== cell) return;
      if (editor(document.activeElement, cell)) flush(); else pending = null;
    }, 1000);
  }, true);
})();
</script>"""
