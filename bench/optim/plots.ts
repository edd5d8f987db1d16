// Plots of bench:optim: vega-lite specs, rendered to SVG by src/node/plot.ts.
import type { TopLevelSpec } from 'vega-lite';

export { renderSvg } from '../../src/node/plot.js';

const schema = 'https://vega.github.io/schema/vega-lite/v6.json';

// Test accuracy on the 2,000-image subset against training steps, one line per optimizer.
export function accuracyCurves(title: string, rows: { optimizer: string; step: number; accuracy: number }[]): TopLevelSpec {
  return {
    $schema: schema, title, width: 640, height: 360, data: { values: rows },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training steps (batch 1)' },
      y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy (2,000 images)', scale: { domain: [0.85, 1] } },
      color: { field: 'optimizer', type: 'nominal' },
    },
  } as TopLevelSpec;
}

// Median iterations to 1e-3 at each optimizer's best learning rate, per function.
export function functionBars(rows: { function: string; optimizer: string; medianIters: number | null; successRate: number }[]): TopLevelSpec {
  return {
    $schema: schema, title: 'Iterations to |x - x*| < 1e-3 (median over starts, best power-of-two learning rate)',
    data: { values: rows.filter((r) => r.medianIters !== null) },
    mark: 'bar',
    encoding: {
      column: { field: 'function', type: 'nominal' },
      x: { field: 'optimizer', type: 'nominal', axis: { labelAngle: -45 } },
      y: { field: 'medianIters', type: 'quantitative', scale: { type: 'log' }, title: 'iterations (log)' },
      color: { field: 'optimizer', type: 'nominal', legend: null },
      tooltip: [{ field: 'successRate', type: 'quantitative' }],
    },
  } as TopLevelSpec;
}
