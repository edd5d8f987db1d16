{
  "targets": [
    {
      "target_name": "xstrain",
      "sources": [
        "native/node/addon.c",
        "native/core/activation_s8.c",
        "native/core/conv2d_s8.c",
        "native/core/add_s8.c",
        "native/core/average_pool_s8.c",
        "native/core/channel_slice_s8.c",
        "native/core/crc32.c",
        "native/core/depthwise_conv2d_s8.c",
        "native/core/depthwise_conv2d_rows_s8.c",
        "native/core/dispatch.c",
        "native/core/fully_connected_s8.c",
        "native/core/fully_connected_split_s8.c",
        "native/core/lqm_s8.c",
        "native/core/nn_mat_mult_s8.c",
        "native/core/optim_f32.c",
        "native/core/optim_s16.c",
        "native/core/plan.c",
        "native/core/sgd_s8.c",
        "native/core/softmax_s8.c",
        "native/core/softmax_xent_s8.c"
      ],
      "cflags_c": ["-std=c99", "-O2", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
