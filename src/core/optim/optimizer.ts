// The real-valued view of an optimizer: one instance per parameter tensor,
// updating a float32 vector in place from its gradient. The float MLP
// (src/core/float-mlp.ts) trains through it, so the fp32 and 16-bit
// fixed-point baselines (./baselines.ts) and LQM are compared on one model.

export interface VectorOptimizer {
  readonly name: string;            // 'sgd-fp32' | 'momentum-fp32' | 'adam-fp32' | 'sgd-fx16' | 'momentum-fx16'
  readonly stateBitsPerParam: number; // optimizer state + stored parameter bits beyond fp32? no: report
                                      // optimizer state bits per parameter (sgd 0, momentum 32 or 16, adam 64)
  step(x: Float32Array, g: Float32Array): void; // x -= update(g), in place, x holds what the forward uses
}
// tensor: what the vector is (e.g. 'w1'), for error messages.
export type OptimizerFactory = (n: number, lr: number, seed: number, tensor?: string) => VectorOptimizer;
