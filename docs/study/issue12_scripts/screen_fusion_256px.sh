#!/bin/bash
# issue 12, seventh session: the multi-scale fusion screen (DyViT masked_fusion), same setup as screens_256px.sh
cd "$(dirname "$0")/../../.."  # the repository root
source <(sed -n '/^screen()/,/^}/p' docs/study/issue12_scripts/screens_256px.sh)
screen fusion model.backbone.masked_fusion=True
