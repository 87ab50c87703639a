"""The calls of the public tutorial (shared/spec/model_training_tutorial.rst) work as written.

Sizes are the tutorial's where building is cheap; training loops use a tiny model so the suite
stays fast. Each test names the tutorial section it covers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from sitsformer.data import collate, make_demo_data
from sitsformer.models import SITSFormer, create_sits_former
from sitsformer.training import SITSFormerTrainer, create_criterion, create_optimizer, create_scheduler


def test_model_configuration_both_methods():
    direct = SITSFormer(img_size=224, patch_size=16, in_channels=13, num_classes=10, embed_dim=256,
                        num_layers=8, num_heads=8, mlp_ratio=4, dropout=0.1, max_seq_len=20)
    model_config = {"img_size": 224, "patch_size": 16, "in_channels": 13, "num_classes": 10,
                    "embed_dim": 256, "num_layers": 8, "num_heads": 8, "dropout": 0.1}
    from_dict = create_sits_former(model_config)
    n_direct = sum(p.numel() for p in direct.parameters())
    assert n_direct == sum(p.numel() for p in from_dict.parameters())
    assert from_dict.config.max_seq_len >= 20


def test_optimizer_and_scheduler_setup():
    model = create_sits_former("sitsformer_tiny", num_classes=4)
    optimizer = create_optimizer(model.parameters(), optimizer_type="adamw", lr=1e-4,
                                 weight_decay=1e-2, betas=(0.9, 0.999))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == 1e-4
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    scheduler = create_scheduler(optimizer, scheduler_type="cosine", num_epochs=100,
                                 warmup_epochs=5, min_lr=1e-6)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < lrs[4] <= 1e-4 + 1e-12  # warm-up rises
    assert max(lrs) <= 1e-4 + 1e-12 and abs(lrs[-1] - 1e-6) < 1e-6  # cosine down to min_lr
    assert all(a >= b - 1e-15 for a, b in zip(lrs[5:], lrs[6:]))  # monotone after warm-up

    opt2 = create_optimizer(model.parameters(), optimizer_type="adamw", lr=1.0)
    step_scheduler = create_scheduler(opt2, scheduler_type="step", step_size=30, gamma=0.1)
    seen = []
    for _ in range(61):
        seen.append(opt2.param_groups[0]["lr"])
        opt2.step()
        step_scheduler.step()
    assert seen[29] == 1.0 and abs(seen[30] - 0.1) < 1e-12 and abs(seen[60] - 0.01) < 1e-12
    assert optimizer.__class__.__name__ == "AdamW" and scheduler.__class__.__name__


def _loader(n=24, batch_size=8, seed=0):
    demo = make_demo_data(n_samples=n, img_size=8, num_classes=4, seed=seed)
    return DataLoader(demo.samples, batch_size=batch_size, shuffle=False, collate_fn=collate)


def test_loss_functions_and_class_weights_from_a_loader():
    num_classes = 4
    train_loader = _loader()
    counts = torch.zeros(num_classes)
    total = 0
    for batch in train_loader:  # the tutorial's manual count over batch['label']
        for label in batch["label"]:
            counts[label] += 1
            total += 1
    manual = total / (num_classes * counts)
    weighted = create_criterion(class_weights="balanced", weight_source=train_loader,
                                num_classes=num_classes)
    logits = torch.randn(8, num_classes)
    target = torch.randint(0, num_classes, (8,))
    expected = nn.CrossEntropyLoss(weight=manual)(logits, target)
    torch.testing.assert_close(weighted(logits, target), expected)
    smooth = create_criterion(label_smoothing=0.1)
    torch.testing.assert_close(smooth(logits, target),
                               nn.CrossEntropyLoss(label_smoothing=0.1)(logits, target))


def test_the_basic_training_loop_with_batch_keys_learns():
    train_loader = _loader(n=64, batch_size=16)
    model = create_sits_former("sitsformer_tiny", num_classes=4, dropout=0.0)
    optimizer = create_optimizer(model.parameters(), optimizer_type="adamw", lr=3e-3)
    criterion = nn.CrossEntropyLoss()
    first = last = None
    for epoch in range(8):
        model.train()
        total = 0.0
        for batch in train_loader:
            sequences = batch["sequence"] / 10000  # [B, T, C, H, W]
            masks = batch["mask"]  # [B, T]
            labels = batch["label"]  # [B]
            optimizer.zero_grad()
            outputs = model(sequences, masks, doy=batch["doy"])  # [B, num_classes]
            loss = criterion(outputs, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            total += loss.item()
        first = total if first is None else first
        last = total
    assert last < 0.85 * first


def test_trainer_runs_the_tutorial_setup(tmp_path):
    model = create_sits_former("sitsformer_tiny", num_classes=4)
    optimizer = create_optimizer(model.parameters(), optimizer_type="adamw", lr=1e-3)
    scheduler = create_scheduler(optimizer, scheduler_type="cosine", num_epochs=2, warmup_epochs=1)
    trainer = SITSFormerTrainer(model, optimizer, scheduler, criterion=nn.CrossEntropyLoss(),
                                device="cpu", num_epochs=2, run_dir=tmp_path, progress=False,
                                tensorboard=False, plots=False,
                                data_meta={"scale": 1e-4})
    result = trainer.fit(_loader(), _loader(seed=1))
    assert result["epochs"] == 2
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and "model_state_dict" in ckpt and "optimizer_state_dict" in ckpt
