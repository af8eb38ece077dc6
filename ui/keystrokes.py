"""Nothing typed is lost: two races in Gradio's page (6.31), closed by a script in <head>.

A field that has just appeared. Gradio builds the fields of a closed accordion, or of a
tab not shown yet, only when it opens, and a frame later sets them to the values the
server sent meanwhile. Whatever was typed in that frame was overwritten: a system prompt
typed the moment Prompt opened was lost, and then saved empty with the chat (the
flaky `test_chat_controls`; on a machine busy running the model a frame is long). The
script holds the keys typed into a field in its first frames and types them into it
once Gradio has set the field.

A table cell. Gradio's table opens a selected cell's editor on the first key typed into
it, but drops that key: "ghost" typed into a new world-info row became "host" (a bare
`gr.Dataframe` does the same). The script types each key that comes before the editor
has the focus into the editor once it has, where the caret is, as the key would have.
Check boxes and keys with a modifier (shortcuts) are left to the table.
Keys typed within the frames in which Gradio sets up a new editor are held until it
has. A click selects its cell at once but focuses it a moment later, so a key typed at
once after a click lands on the cell focused before: the script counts it as typed into
the clicked cell, the one whose editor the table opens.
"""

from __future__ import annotations

HEAD = """<script>
(() => {
  // Keys typed into a field Gradio has not finished setting up are held, and typed into
  // it once it is stable, where the caret is, as they would have been.
  const TEXT = "textarea, input:not([type]), input[type=text], input[type=number], input[type=search], "
    + "input[type=password], input[type=url], input[type=email]";
  const isField = (el) => el instanceof HTMLElement && el.matches(TEXT);
  const fresh = new WeakSet();
  const seen = new WeakSet();  // fields already watched
  const held = new WeakMap();  // a fresh field -> the keys typed into it so far
  const typed = new WeakMap();  // a fresh field -> its value as a paste or fill left it
  const typeInto = (el, keys) => {
    if (document.activeElement !== el) el.focus();
    if (document.activeElement === el && document.execCommand("insertText", false, keys)) return;
    el.value += keys;  // not focusable any more: append, and tell Gradio
    el.dispatchEvent(new Event("input", { bubbles: true }));
  };
  const settle = (el) => {
    if (seen.has(el)) return;
    seen.add(el);
    fresh.add(el);
    // Gradio sets a new field's value a frame after building it; two frames and a
    // moment on, the field is the user's.
    requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => {
      fresh.delete(el);
      const value = typed.get(el);
      const keys = held.get(el);
      typed.delete(el);
      held.delete(el);
      if (value !== undefined && el.value !== value) {
        el.value = value;
        el.dispatchEvent(new Event("input", { bubbles: true }));
      }
      if (keys) typeInto(el, keys);
    }, 50)));
  };
  const hold = (el, keys) => held.set(el, (held.get(el) || "") + keys);
  document.addEventListener("input", (event) => {
    if (fresh.has(event.target)) typed.set(event.target, event.target.value);
  }, true);
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof Element)) continue;
        if (isField(node)) settle(node);
        node.querySelectorAll(TEXT).forEach((el) => { if (isField(el)) settle(el); });
      }
    }
  }).observe(document.documentElement, { childList: true, subtree: true });
  const printable = (event) =>
    event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey && !event.isComposing;

  // A table cell: Gradio's table opens a selected cell's editor on the first key typed
  // into it, but drops that key. Keys typed before the editor has the focus wait for it.
  let pending = null;  // {where, keys}
  // A cell by its place (table, row, column), not by its element: a save that lands while
  // the editor opens re-renders the table, and the editor then opens in a new element.
  const where = (cell) => {
    const block = cell.parentElement && cell.parentElement.closest("[id]");
    return `${block ? block.id : ""}:${cell.getAttribute("data-row")}:${cell.getAttribute("data-col")}`;
  };
  const editor = (el, p) => {
    if (!el || (el.tagName !== "TEXTAREA" && el.tagName !== "INPUT")) return false;
    const host = el.closest("[role=gridcell]");
    return !!host && where(host) === p.where;
  };
  const handOver = (el) => {
    const keys = pending.keys;
    pending = null;
    // An editor can take the focus before the observer has seen it appear (its callback
    // runs later): one not seen yet is new, and Gradio is about to set it.
    if (!seen.has(el)) settle(el);
    if (fresh.has(el)) hold(el, keys); else typeInto(el, keys);
  };
  // The cell the table has selected. A click selects a cell at once but moves the focus
  // to it a moment later: a key typed in between lands on the cell focused before, yet
  // the table opens the clicked cell's editor.
  let selected = null;
  const cellOf = (el) => (el instanceof Element ? el.closest("[role=gridcell]") : null);
  document.addEventListener("pointerdown", (event) => {
    const cell = cellOf(event.target);
    selected = cell ? where(cell) : null;
  }, true);
  document.addEventListener("focusin", (event) => {
    if (pending && editor(event.target, pending)) handOver(event.target);
    const cell = cellOf(event.target);
    if (cell) selected = where(cell);
  }, true);
  const sameTable = (a, b) => a.slice(0, a.indexOf(":")) === b.slice(0, b.indexOf(":"));
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (pending && editor(target, pending)) handOver(target);  // before this key lands
    if (!printable(event)) return;
    if (fresh.has(target)) {  // Gradio is about to set this field: keep the key for later
      event.preventDefault();
      hold(target, event.key);
      return;
    }
    if (!(target instanceof Element) || target.getAttribute("role") !== "gridcell") return;
    if (target.querySelector(".bool-cell")) return;
    event.preventDefault();  // the table still opens the editor; the key is typed into it
    const focused = where(target);
    const place = selected && sameTable(selected, focused) ? selected : focused;
    if (pending && pending.where === place) {
      pending.keys += event.key;
      return;
    }
    pending = { where: place, keys: event.key };
    // On a busy machine the editor can take a while to open; past this, the keys go.
    setTimeout(() => {
      if (!pending || pending.where !== place) return;
      if (editor(document.activeElement, pending)) handOver(document.activeElement); else pending = null;
    }, 3000);
  }, true);
})();
</script>"""
