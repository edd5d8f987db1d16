// Op ids and argument counts of the C dispatcher (native/core/xst.h).
// host-tests/ops.test.ts checks that the two agree.

export const Op = {
  FcForward: 1,
  FcBackwardInput: 2,
  FcBackwardBias: 3,
  FcBackwardWeight: 4,
  FcBackwardWeightSgd: 5,
  SgdS8Update: 6,
  SgdS32Update: 7,
  ActivationBackward: 8,
  SoftmaxXentBackward: 9,
  // average pool, global mean, add, softmax (ids 18-27)
  AvgPoolForward: 18,
  AvgPoolBackward: 19,
  AddForward: 20,
  GradAdd: 21,
  SoftmaxForward: 22,
  MeanForward: 23,
} as const;
export type OpId = (typeof Op)[keyof typeof Op];

export const opNargs: Readonly<Record<OpId, number>> = {
  1: 14,
  2: 11,
  3: 7,
  4: 11,
  5: 15,
  6: 12,
  7: 9,
  8: 3,
  9: 7,
  18: 17,
  19: 17,
  20: 17,
  21: 7,
  22: 7,
  23: 10,
};

export const opName: Readonly<Record<OpId, string>> = {
  1: 'fully_connected_s8_forward',
  2: 'fully_connected_s8_backward_input',
  3: 'fully_connected_s8_backward_bias',
  4: 'fully_connected_s8_backward_weight',
  5: 'fully_connected_s8_backward_weight_sgd',
  6: 'sgd_s8_update',
  7: 'sgd_s32_update',
  8: 'activation_s8_backward',
  9: 'softmax_xent_s8_backward',
  18: 'average_pool_s8_forward',
  19: 'average_pool_s8_backward',
  20: 'add_s8_forward',
  21: 'add_s8_grad_sum',
  22: 'softmax_s8_forward',
  23: 'mean_s8_forward',
};

// Status codes of the C core, in order (xst_status).
export const statusNames = [
  'ok',
  'wrong number of arguments',
  'unknown op',
  'bad dimensions',
  'channel range out of bounds',
  'tensor outside the arena',
  'tensor misaligned',
  'quantisation parameter out of range',
  'output tensor overlaps another tensor',
];
