# Deprecated alias of mae_dyvit-n_1xb32-coslr-4e_demo.py (the demo recipe trains 4 epochs of the
# pool), kept so that existing commands and scripts still run.
_base_ = ['./mae_dyvit-n_1xb32-coslr-4e_demo.py']
