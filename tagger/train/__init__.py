"""Fine-tuning and distillation: `tagger train POOL -o MODEL_DIR` teaches a small student the catalog's attribute
call from labeled products (reviewed tags, gold, or a teacher's labels); `tagger distill` has a teacher label a
catalog first. The heavy parts (torch, transformers, peft, gguf: the `train` extra) are imported by the modules that
use them, so the backends may import `tagger.train.student` to resolve a student's folder at no cost."""
