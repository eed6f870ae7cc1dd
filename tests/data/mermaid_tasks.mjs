// Reads a Mermaid gantt chart on stdin and prints its tasks as Mermaid 11 itself computes them:
// [[section, name, start ms, end ms, crit, done, active], ...], or exits 1 with the parse error.
import fs from 'fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!DOCTYPE html><body></body>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
const text = fs.readFileSync(0, 'utf8');
try {
  await mermaid.parse(text);
  const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
  const tasks = diagram.db.getTasks().map((t) => [
    t.section, t.task.trim(), t.startTime.getTime(), t.endTime.getTime(), !!t.crit, !!t.done, !!t.active,
  ]);
  console.log(JSON.stringify(tasks));
} catch (error) {
  console.log(String(error.message || error));
  process.exit(1);
}
