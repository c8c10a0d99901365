"""Around the method: experiments, ablation grids, studies, baselines, figures, widgets."""
