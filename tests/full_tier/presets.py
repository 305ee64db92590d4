"""The `full` presets by name: composing all ~100 presets to find them takes ~15 s, too slow for collection, so
the list is written out and `test_full_preset_list_is_complete` checks it against the composed tiers."""

FULL_PRESETS = (
    "asam_cifar", "asam_cifar100", "asam_cifar100_sam", "asam_cifar100_sgd", "asam_cifar_sam", "asam_cifar_sgd",
    "asam_on_cifar100",
    "gam_cifar", "gam_cifar100", "gam_cifar100_sgd", "gam_cifar_sgd",
    "grokking_orthograd", "grokking_softmax_f32", "grokking_softmax_f64", "grokking_stablemax",
    "jd_cifar10",
    "landscape_cifar_resnet56_noskip", "landscape_cifar_resnet56_skip",
    "mesa_imagenet", "saf_imagenet", "saf_imagenet_sam", "saf_imagenet_sgd",
    "notears_topo_er2_d100", "notears_topo_er2_d50", "notears_topo_ls_er2_d100", "notears_topo_ls_er2_d50",
    "notears_topo_sf4_d50",
    "powersgd_cifar10_rank1", "powersgd_cifar10_rank2", "powersgd_cifar10_rank4", "powersgd_cifar10_sgd",
    "sam_cifar", "sam_cifar100", "sam_cifar100_sgd", "sam_cifar_sgd", "sam_fmnist", "sam_fmnist_sgd",
    "sam_label_noise", "sam_label_noise_sgd",
    "rnn_torder_clip_full", "rnn_torder_clipreg_full", "rnn_torder_sgd_full",
    "sam_on_cifar100", "sam_on_cifar100_sam", "sam_on_cifar100_sgd",
    "shampoo_cifar10_resnet32_adam", "shampoo_cifar10_resnet32_sgd", "shampoo_cifar10_resnet32_shampoo",
)
