"""Typing into a table cell keeps every key typed.

Gradio's table (6.31) opens a selected cell's editor on the first key typed into it, but
drops that key: "ghost" typed into a new world-info row became "host". Nothing on the
server plays a part (a bare `gr.Dataframe` does the same). `HEAD`, a script in the page's
<head>, takes each key typed before the editor has the focus and types it into the editor
once it has: where the caret is, as the key itself would have, so the edit events fire as
usual. Check boxes and keys with a modifier (shortcuts) are left to the table.
"""

from __future__ import annotations

HEAD = """<script>
(() => {
  let pending = null;  // {cell, keys}: typed into a cell whose editor is not open yet
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
