// Node adapter: renders a vega-lite spec to SVG with vega, headless (no
// canvas, no browser). The specs are plain data built elsewhere (the
// compiler's arena chart, bench:optim's curves); vega and vega-lite are
// runtime dependencies because `xstrain compile` draws its arena chart.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec };

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
