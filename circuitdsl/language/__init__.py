"""The language core: text -> AST -> resolved names -> circuit IR -> graph. Never imports torch.

syntax/      parse (Lark grammar -> AST with spans) and fmt
loader       reading files, imports, cycles
resolve      names, families, types, statistic and stimulus names
compile      quantifiers expanded, stable ids, effective thresholds -> `ir.Circuit`
ir, graph    the frozen IR; its networkx / GraphML view
claims       the claim-kind registry
stimuli      the stimulus catalogue (names and parameters)
diagnostics  the one error type, rendered like a compiler
"""
