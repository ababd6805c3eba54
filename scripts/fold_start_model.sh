#!/usr/bin/env bash
# Restore the head refit brain-mri-resnet50@3688fbe744ee (backbone trained on Br35H alone, head refit on every
# source) from the repository's history into DIR: the start model of the leave-one-source-out fine-tuning folds,
# whose backbone never saw the source a fold holds out (the shipped model's backbone saw every source).
#   bash scripts/fold_start_model.sh ~/runs/start/head-refit
#   brain-mri finetune --model ~/runs/start/head-refit --held-out lgg ...
set -euo pipefail
dir=${1:?usage: bash scripts/fold_start_model.sh DIR}
commit=ab881da868926d1ddd22bf67c7e4a03a6025a134  # the last commit that shipped it
expected=3688fbe744ee10db792d00159b80971b2b8e59cb30bceff900d72bb0bb26741b
cd "$(dirname "$0")/.."
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "error: commit $commit is not in this clone's history (a shallow clone?); run 'git fetch --unshallow' first." >&2
    exit 2
fi
mkdir -p "$dir"
for name in model.keras model_card.json type_head.keras; do
    git show "$commit:models/brain-mri-resnet50/$name" > "$dir/$name.part"
    mv "$dir/$name.part" "$dir/$name"
done
actual=$(sha256sum "$dir/model.keras" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
    echo "error: $dir/model.keras has SHA-256 $actual, expected $expected." >&2
    exit 1
fi
echo "Restored brain-mri-resnet50@${expected:0:12} into $dir"
